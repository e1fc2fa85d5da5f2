package bff

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestIssuerMismatchIsPermanent: an issuer that differs from the one
// the IdP reports (here by a trailing slash) is a configuration error:
// discovery stops at once, the log says it once with the fix, and
// /readyz's body shows it. Before, discovery retried with backoff
// forever and /readyz said only "oidc discovery not done".
func TestIssuerMismatchIsPermanent(t *testing.T) {
	logs := &lockedBuffer{}
	h := newHarness(t, harnessOpts{logs: logs, notReady: true, mutate: func(a *AppConfig) { a.Issuer += "/" }})
	select {
	case <-h.gw.cur.Load().apps[0].disc.done:
	case <-time.After(5 * time.Second):
		t.Fatal("discovery still retries an issuer mismatch")
	}
	fix := `the IdP calls itself "` + h.op.URL + `"; set issuer to that`
	rec := httptest.NewRecorder()
	h.gw.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), fix) {
		t.Errorf("/readyz = %d %q, want 503 naming the fix %q", rec.Code, rec.Body, fix)
	}
	lines := logs.lines(t, "oidc discovery: configuration error")
	if len(lines) != 1 || !strings.Contains(lines[0]["err"].(string), fix) {
		t.Errorf("log lines = %v, want one naming the fix", lines)
	}
	if retries := logs.lines(t, "oidc discovery failed; retrying"); len(retries) != 0 {
		t.Errorf("discovery retried %d times", len(retries))
	}
}
