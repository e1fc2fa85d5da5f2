package bff

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

const adminToken = "admin-token-0123456789"

func adminHarness(t *testing.T) (*harness, *httptest.Server) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) {
		c.AdminListen = "127.0.0.1:0"
		c.AdminToken = adminToken
	}})
	admin := httptest.NewServer(h.gw.AdminHandler())
	t.Cleanup(admin.Close)
	return h, admin
}

func adminDo(t *testing.T, method, url, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestAdminAuth(t *testing.T) {
	_, admin := adminHarness(t)
	for _, tok := range []string{"", "wrong", adminToken + "x"} {
		resp, _ := adminDo(t, http.MethodGet, admin.URL+"/admin/sessions?sub=alice", tok, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
	if resp, _ := adminDo(t, http.MethodGet, admin.URL+"/admin/sessions?sub=alice", adminToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("right token: status %d, want 200", resp.StatusCode)
	}
	// Profiles are behind the same token.
	if resp, _ := adminDo(t, http.MethodGet, admin.URL+"/debug/pprof/cmdline", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("pprof without a token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := adminDo(t, http.MethodGet, admin.URL+"/debug/pprof/cmdline", adminToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("pprof with the token: %d, want 200", resp.StatusCode)
	}
}

func TestAdminOffWithoutToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	admin := httptest.NewServer(h.gw.AdminHandler())
	defer admin.Close()
	if resp, _ := adminDo(t, http.MethodGet, admin.URL+"/admin/sessions?sub=alice", "anything-at-all-1234", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404: the admin API is off without admin_token", resp.StatusCode)
	}
}

func TestAdminListAndRevoke(t *testing.T) {
	h, admin := adminHarness(t)
	h.op.SetUser("alice", nil)
	a1, a2 := h.login("/"), h.login("/")
	h.get(a1, "/api/x", "X-CSRF", "1")
	h.op.SetUser("bob", nil)
	bob := h.login("/")

	resp, out := adminDo(t, http.MethodGet, admin.URL+"/admin/sessions?sub=alice", adminToken, "")
	if resp.StatusCode != http.StatusOK || out["count"] != float64(2) {
		t.Fatalf("list: %d %v, want 2 sessions", resp.StatusCode, out)
	}
	raw, _ := json.Marshal(out)
	s1 := h.sessionOf(a1)
	for _, secret := range []string{s1.AccessToken, s1.RefreshToken, s1.IDToken, s1.ID} {
		if strings.Contains(string(raw), secret) {
			t.Fatal("the admin list shows a token or a raw session id")
		}
	}
	if !strings.Contains(string(raw), session.Hash(s1.ID)) || !strings.Contains(string(raw), "demo:/api/") {
		t.Errorf("list lacks the hashed session id or the upstream used: %s", raw)
	}

	_, lines := h.openEvents(a1)
	waitLine(t, lines, ": connected", 5*time.Second)
	resp, out = adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, `{"app":"demo","sub":"alice"}`)
	if resp.StatusCode != http.StatusOK || out["ended"] != float64(2) {
		t.Fatalf("revoke: %d %v, want 2 ended", resp.StatusCode, out)
	}
	data, _ := waitLine(t, lines, "data:", 5*time.Second)
	if !strings.Contains(data, `"admin"`) {
		t.Errorf("the open tab got %q, want the admin cause", data)
	}
	if h.signedIn(a1) || h.signedIn(a2) || !h.signedIn(bob) {
		t.Errorf("after revoke: alice %v %v bob %v, want false false true", h.signedIn(a1), h.signedIn(a2), h.signedIn(bob))
	}

	// By hashed session id.
	resp, out = adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, `{"session":"`+session.Hash(h.sessionOf(bob).ID)+`"}`)
	if resp.StatusCode != http.StatusOK || out["ended"] != float64(1) || h.signedIn(bob) {
		t.Errorf("revoke by session: %d %v, bob signed in %v", resp.StatusCode, out, h.signedIn(bob))
	}
}

func TestAdminBadInput(t *testing.T) {
	_, admin := adminHarness(t)
	for _, body := range []string{``, `{`, `[]`, `{"sub":1}`, `{"app":"demo","sub":"a","colour":"blue"}`, `{"sub":"alice"}`, `{"sid":"x","sub":"y"}`, `{} {}`} {
		resp, out := adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, body)
		if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_request" || out["error_description"] == "" {
			t.Errorf("body %q: %d %v, want 400 invalid_request with a description", body, resp.StatusCode, out)
		}
	}
	if resp, _ := adminDo(t, http.MethodGet, admin.URL+"/admin/sessions", adminToken, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("list without a filter: %d, want 400", resp.StatusCode)
	}
}

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		xff     string
		limited bool // the second request from another forwarded address is limited too
	}{
		{"untrusted XFF is ignored", nil, "198.51.100.", true},
		{"trusted proxy: XFF decides", []string{"127.0.0.0/8"}, "198.51.100.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{server: func(c *ServerConfig) {
				c.TrustedProxies = tt.trusted
				c.RateLimits.Frontchannel = Limit{Rate: 0.001, Burst: 1}
			}})
			c := h.browser()
			h.get(c, "/bff/frontchannel-logout", "X-Forwarded-For", tt.xff+"1")
			resp := h.get(c, "/bff/frontchannel-logout", "X-Forwarded-For", tt.xff+"2")
			if got := resp.StatusCode == http.StatusTooManyRequests; got != tt.limited {
				t.Errorf("second client limited = %v, want %v", got, tt.limited)
			}
		})
	}
}

func TestPageSecurityHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	pages := map[string]string{
		"/bff/callback?state=x":    "'none'",
		"/bff/signed-out":          "'none'",
		"/bff/frontchannel-logout": h.op.URL,
		"/bff/check-session":       "'self'",
	}
	for path, ancestors := range pages {
		t.Run(path, func(t *testing.T) {
			resp := h.get(h.browser(), path, "Sec-Fetch-Dest", "iframe")
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors "+ancestors) {
				t.Errorf("CSP = %q, want nonces, default-src 'none' and frame-ancestors %s", csp, ancestors)
			}
			if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("Referrer-Policy %q X-Content-Type-Options %q", resp.Header.Get("Referrer-Policy"), resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
	t.Run("values are escaped", func(t *testing.T) {
		h.op.FailNextAuthorize(`<script>alert(1)</script>`)
		resp, _ := h.follow(h.browser(), "/bff/login")
		if b := body(t, resp); strings.Contains(b, "<script>alert(1)") {
			t.Error("the IdP's error code reached the page unescaped")
		}
	})
}

func TestForwardedProtoOnlyFromTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name      string
		trusted   []string
		wantProto string
		wantFor   string
	}{
		{"untrusted peer", nil, "http", "127.0.0.1"},
		{"trusted load balancer", []string{"127.0.0.0/8"}, "https", "203.0.113.9, 127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.TrustedProxies = tt.trusted }})
			c := h.login("/")
			h.get(c, "/api/x", "X-CSRF", "1", "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.9")
			got := h.lastAPIRequest()
			if p := got.Header.Get("X-Forwarded-Proto"); p != tt.wantProto {
				t.Errorf("upstream X-Forwarded-Proto = %q, want %q", p, tt.wantProto)
			}
			if f := got.Header.Get("X-Forwarded-For"); f != tt.wantFor {
				t.Errorf("upstream X-Forwarded-For = %q, want %q", f, tt.wantFor)
			}
		})
	}
}
