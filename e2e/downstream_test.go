package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// TestDownstreamLogoutToken (issue 5, scenario 7): the user signs in, calls
// the API (so the demo API counts as used: notify = "if_used"), and signs
// out at the IdP through another client. The gateway's session ends by
// back-channel, and the gateway signs a logout token for the demo API
// ([[apps.downstream]], audience demo-api). The demo API's POST /logout
// validates it with go-oidc against the gateway's discovery document and
// logs "valid logout token" for the user's sub and the IdP's sid.
func TestDownstreamLogoutToken(t *testing.T) {
	s := startStack(t)
	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)

	r := tb.fetch("/bff/user")
	var user map[string]any
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &user) != nil || user["sub"] == nil {
		t.Fatalf("/bff/user = %d %s, want 200 with the user", r.Status, r.Body)
	}
	if _, ok := user["sid"]; ok {
		t.Errorf("/bff/user carries the IdP's sid: the browser must never see it")
	}
	sub, _ := user["sub"].(string)
	if r := tb.fetch("/api/hello"); r.Status != 200 {
		t.Fatalf("/api/hello = %d %s, want 200", r.Status, r.Body)
	}

	tb.navigate(s.idpSignOutURL())
	tb.click("#logout-yes")
	tb.waitVisible("#other-signed-out")
	loggedOut := time.Now()

	// The IdP's back-channel token named the sid of the gateway's session
	// (known from the gateway's log by its hash only).
	got := s.idpEvents("backchannel.success", map[string]string{"client_id": "demo"})
	if len(got) != 1 {
		t.Fatalf("IdP logged %d backchannel.success for demo, want 1", len(got))
	}
	sid := got[0].str("sid")
	if h := s.sessionSIDHash(t); sid == "" || gatewayHash(sid) != h {
		t.Errorf("the IdP's logout token named sid hash %s, want the session's %s", gatewayHash(sid), h)
	}

	wantLine := fmt.Sprintf("iss=%s sub_hash=%s sid_hash=%s", s.gwURL, logHash(sub), logHash(sid))
	err := eventually(5*time.Second, func() error {
		for _, line := range s.api.log.Lines() {
			if strings.Contains(line, `msg="valid logout token"`) && strings.Contains(line, wantLine) {
				return nil
			}
		}
		return fmt.Errorf("no valid logout token logged")
	})
	if err != nil {
		t.Fatalf("the demo API logged no \"valid logout token\" with %s within 5 s of the IdP logout; its log:\n%s",
			wantLine, proctest.Tail(s.api.log.String(), 20))
	}
	t.Logf("the demo API validated the gateway's logout token %v after the IdP logout", time.Since(loggedOut).Round(time.Millisecond))
	// The API logs the request line when its handler has returned, and the
	// gateway counts the delivery when the API's answer has reached it:
	// wait for both before counting.
	if err := eventually(5*time.Second, func() error {
		if len(s.apiRequests("/logout")) == 0 {
			return fmt.Errorf("the demo API logged no POST /logout request")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if n := countLines(s.api, `msg="valid logout token"`); n != 1 {
		t.Errorf("the demo API logged %d valid logout tokens, want 1", n)
	}
	if n := countLines(s.api, "logout token rejected"); n != 0 {
		t.Errorf("the demo API rejected %d logout tokens, want 0", n)
	}
	if reqs := s.apiRequests("/logout"); len(reqs) != 1 || !strings.Contains(reqs[0], "status=200") {
		t.Errorf("the demo API's POST /logout requests = %q, want one answered 200", reqs)
	}
	// It found the keys through the gateway's own discovery document.
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		if n := s.waitGatewayRequests(path, 200, 1); n == 0 {
			t.Errorf("the gateway served no %s: the API did not discover it", path)
		}
	}
	if n := s.waitMetric(1, "bffgate_downstream_logout_total", `result="delivered"`); n != 1 {
		t.Errorf("bffgate_downstream_logout_total{result=\"delivered\"} = %v, want 1", n)
	}

	// The receiver answers 400 to anything else (Back-Channel Logout §2.8).
	res, err := http.PostForm(s.apiURL+"/logout", url.Values{"logout_token": {"not.a.token"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("POST /logout with a bad token = %d (Cache-Control %q), want 400 no-store", res.StatusCode, res.Header.Get("Cache-Control"))
	}
}

// logHash is how the demo API logs identifiers (hashForLog in examples/api):
// the first 6 bytes of SHA-256, in hex.
// gatewayHash is session.Hash, the gateway's sid_hash in its logs.
func gatewayHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// sessionSIDHash is the sid_hash the gateway logged when the (last)
// session started: the e2e tests' only view of the IdP's sid, as
// /bff/user no longer shows it.
func (s *stack) sessionSIDHash(t *testing.T) string {
	t.Helper()
	h := ""
	for _, e := range jsonLines(s.gw) {
		if e.str("msg") == "session started" {
			h = e.str("sid_hash")
		}
	}
	if h == "" {
		t.Fatal("the gateway logged no session started with a sid_hash")
	}
	return h
}

func logHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// countLines counts the lines of p's output that contain substr.
func countLines(p *proc, substr string) int {
	n := 0
	for _, line := range p.log.Lines() {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}
