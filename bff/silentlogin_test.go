package bff

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var (
	silentMessageAttr = regexp.MustCompile(`data-message="([^"]*)"`)
	silentOriginAttr  = regexp.MustCompile(`data-origin="([^"]*)"`)
)

// silentAnswer checks that resp is the silent login's result page, framable
// by the app's own origin only and posting to it, and returns its message.
func (h *harness) silentAnswer(resp *http.Response) silentMessage {
	h.t.Helper()
	b := body(h.t, resp)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		h.t.Fatalf("silent login answered %d %s, want 200 with the result page\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self'") || resp.Header.Get("X-Frame-Options") != "" {
		h.t.Errorf("result page CSP %q, X-Frame-Options %q: want frame-ancestors 'self' and no X-Frame-Options", csp, resp.Header.Get("X-Frame-Options"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		h.t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	o := silentOriginAttr.FindStringSubmatch(b)
	if o == nil || html.UnescapeString(o[1]) != h.srv.URL {
		h.t.Errorf("result page posts to %v, want only the app's origin %s", o, h.srv.URL)
	}
	m := silentMessageAttr.FindStringSubmatch(b)
	if m == nil {
		h.t.Fatalf("result page has no message:\n%s", b)
	}
	var msg silentMessage
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &msg); err != nil {
		h.t.Fatalf("message %q: %v", m[1], err)
	}
	if msg.Type != silentMessageType {
		h.t.Errorf("message type %q, want %q", msg.Type, silentMessageType)
	}
	return msg
}

// TestSilentLogin: the silent login asks for prompt=none with the login's
// state machinery, and its callback creates the session and answers the
// result page instead of a redirect.
func TestSilentLogin(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.browser()
	resp := h.get(c, "/bff/silent-login")
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("silent-login = %d %v, want 302 to the IdP", resp.StatusCode, err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), h.op.URL+"/authorize") || q.Get("prompt") != "none" ||
		q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || !strings.HasPrefix(q.Get("state"), silentStatePrefix) {
		t.Fatalf("silent-login redirects to %s, want the authorization endpoint with prompt=none, PKCE, nonce and a silent state", loc)
	}
	final, visited := h.follow(c, loc.String())
	if last := visited[len(visited)-1]; !strings.HasPrefix(last, h.srv.URL+"/bff/callback") {
		t.Fatalf("silent login ended at %s, want the callback's page", last)
	}
	if msg := h.silentAnswer(final); !msg.OK || msg.Error != "" {
		t.Errorf("message = %+v, want ok", msg)
	}
	if !h.signedIn(c) {
		t.Error("no session after a successful silent login")
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": "ok", "reason": "silent"}); got != 1 {
		t.Errorf(`bffgate_logins_total{result="ok",reason="silent"} = %v, want 1`, got)
	}

	// Signed in already: the answer comes at once, and the session stays
	// (a new login would replace it and sign its tabs out).
	before := h.sessionOf(c).ID
	if msg := h.silentAnswer(h.get(c, "/bff/silent-login")); !msg.OK {
		t.Errorf("silent login with a session: %+v, want ok", msg)
	}
	if after := h.sessionOf(c).ID; after != before {
		t.Error("a silent login with a live session replaced it")
	}
}

// TestSilentLoginAnswers: the IdP's "the user must interact" errors are
// an answer (ok:false with the code, result none); other errors end in
// ok:false too, never in an error page or a redirect.
func TestSilentLoginAnswers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		idp, want, result string
	}{
		{"login_required", "login_required", "none"},
		{"interaction_required", "interaction_required", "none"},
		{"consent_required", "consent_required", "none"},
		{"account_selection_required", "account_selection_required", "none"},
		{"access_denied", "access_denied", "failed"},
		{"<script>alert(1)</script>", "idp_error", "failed"},
	}
	counted := map[string]float64{}
	for _, tt := range tests {
		c := h.browser()
		h.op.FailNextAuthorize(tt.idp)
		final, visited := h.follow(c, "/bff/silent-login")
		if last := visited[len(visited)-1]; !strings.HasPrefix(last, h.srv.URL+"/bff/callback") {
			t.Fatalf("%s: ended at %s, want the callback's page", tt.idp, last)
		}
		if msg := h.silentAnswer(final); msg.OK || msg.Error != tt.want {
			t.Errorf("%s: message %+v, want ok:false error %q", tt.idp, msg, tt.want)
		}
		if h.signedIn(c) {
			t.Errorf("%s: a session was created", tt.idp)
		}
		reason := tt.idp
		if tt.result == "failed" {
			reason = "idp_error"
		}
		counted[tt.result+" "+reason]++
		if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": tt.result, "reason": reason}); got != counted[tt.result+" "+reason] {
			t.Errorf(`%s: bffgate_logins_total{result=%q,reason=%q} = %v, want %v`, tt.idp, tt.result, reason, got, counted[tt.result+" "+reason])
		}
	}

	// A silent state the browser did not start: ok:false, no session.
	c := h.browser()
	if msg := h.silentAnswer(h.get(c, "/bff/callback?code=x&state="+silentStatePrefix+"forged")); msg.OK || msg.Error != "unknown_state" {
		t.Errorf("forged silent state: %+v, want ok:false unknown_state", msg)
	}
	// An interactive login's failure is still the error page.
	if resp := h.get(c, "/bff/callback?code=x&state=forged"); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("forged state: %d (X-Frame-Options %q), want the 400 error page, not frameable", resp.StatusCode, resp.Header.Get("X-Frame-Options"))
	}
}

// TestSilentLoginSharesSlots: logins and silent logins take turns over the
// same login-state slots, so neither grows the browser's cookies and a
// silent attempt does not overwrite the login just started.
func TestSilentLoginSharesSlots(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.browser()
	login := h.get(c, "/bff/login?returnUrl=/a")
	silent := h.get(c, "/bff/silent-login")
	slots := map[string]bool{}
	for _, resp := range []*http.Response{login, silent} {
		for _, ck := range resp.Cookies() {
			if ck.Path == "/bff/callback" && ck.MaxAge > 0 {
				slots[ck.Name] = true
			}
		}
	}
	if len(slots) != 2 {
		t.Errorf("a login then a silent login used slots %v, want two different ones", slots)
	}
	// Both logins complete.
	for _, resp := range []*http.Response{login, silent} {
		loc, _ := resp.Location()
		final, visited := h.follow(c, loc.String())
		if last := visited[len(visited)-1]; strings.Contains(last, "/bff/callback") && final.StatusCode != http.StatusOK {
			t.Errorf("login from %s ended at %s with %d", resp.Request.URL.Path, last, final.StatusCode)
		}
	}
	if !h.signedIn(c) {
		t.Error("not signed in")
	}
}
