package bff

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

func TestFrontchannelLogout(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	anon := h.browser()
	tests := []struct {
		name       string
		query      func(sid string) string
		withCookie bool
		want       int
		ends       bool
	}{
		{"iss and sid, no cookie", func(sid string) string { return "?iss=" + url.QueryEscape(h.op.URL) + "&sid=" + sid }, false, 200, true},
		{"iss without sid", func(string) string { return "?iss=" + url.QueryEscape(h.op.URL) }, true, 400, false},
		{"sid without iss", func(sid string) string { return "?sid=" + sid }, true, 400, false},
		{"wrong iss", func(sid string) string { return "?iss=https%3A%2F%2Fevil.example&sid=" + sid }, false, 400, false},
		{"unknown sid", func(string) string { return "?iss=" + url.QueryEscape(h.op.URL) + "&sid=nope" }, false, 200, false},
		{"sid over 255 bytes", func(string) string { return "?iss=" + url.QueryEscape(h.op.URL) + "&sid=" + strings.Repeat("s", 256) }, false, 400, false},
		{"neither, with the cookie", func(string) string { return "" }, true, 200, true},
		{"neither, without the cookie", func(string) string { return "" }, false, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.login("/")
			client := anon
			if tt.withCookie {
				client = c
			}
			resp := h.get(client, "/bff/frontchannel-logout"+tt.query(h.op.LastSID()), "Sec-Fetch-Dest", "iframe")
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if got := h.signedIn(c); got == tt.ends {
				t.Errorf("signed in after = %v, want %v", got, !tt.ends)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if tt.want != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want text/html", ct)
			}
			if xfo := resp.Header.Get("X-Frame-Options"); xfo != "" {
				t.Errorf("X-Frame-Options = %q: the IdP could not frame the page", xfo)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors "+h.op.URL) {
				t.Errorf("CSP = %q, want frame-ancestors %s", csp, h.op.URL)
			}
		})
	}
}

func TestFrontchannelSessionRequired(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) { a.FrontchannelSessionRequired = true }})
	c := h.login("/")
	if resp := h.get(c, "/bff/frontchannel-logout"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400 without iss and sid", resp.StatusCode)
	}
	if !h.signedIn(c) {
		t.Error("a refused front-channel request ended the session")
	}
}

func TestFrontchannelClearsCookie(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	resp := h.get(c, "/bff/frontchannel-logout", "Sec-Fetch-Dest", "iframe")
	cleared := slices.ContainsFunc(resp.Cookies(), func(k *http.Cookie) bool { return k.Name == "bffgate-demo" && k.MaxAge < 0 })
	if !cleared {
		t.Errorf("cookies = %v, want bffgate-demo cleared", resp.Cookies())
	}
}

func TestRPInitiatedLogout(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	s := h.sessionOf(c)

	if resp := h.get(c, "/bff/logout?sid=wrong"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong sid: status = %d, want 400", resp.StatusCode)
	}
	if resp := h.get(c, "/bff/logout"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no sid: status = %d, want 400", resp.StatusCode)
	}
	if !h.signedIn(c) {
		t.Fatal("a refused logout ended the session")
	}

	resp := h.get(c, h.logoutURL(c)+"&returnUrl=%2Fbye")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302", resp.StatusCode)
	}
	end, _ := resp.Location()
	q := end.Query()
	if !strings.HasPrefix(end.String(), h.op.URL) {
		t.Errorf("redirect to %s, want the end_session_endpoint", end)
	}
	if q.Get("id_token_hint") != s.IDToken || q.Get("client_id") != h.op.ClientID() || q.Get("state") == "" ||
		q.Get("post_logout_redirect_uri") != h.srv.URL+"/bff/signed-out" {
		t.Errorf("end_session parameters = %v", q)
	}
	if h.signedIn(c) {
		t.Error("the session survived the RP-initiated logout")
	}
	waitFor(t, "refresh token revoked at the IdP", func() bool { return slices.Contains(h.op.Revoked(), s.RefreshToken) })

	// The OP sends the browser back with the state.
	resp = h.get(c, end.String())
	back, _ := resp.Location()
	resp = h.get(c, back.String())
	if loc, _ := resp.Location(); resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/bye" {
		t.Fatalf("signed-out with the right state: %d to %v, want 302 to /bye", resp.StatusCode, loc)
	}
	// The state is single use.
	resp = h.get(c, back.String())
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Errorf("replayed state: %d %q, want the neutral page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSignedOutWithoutValidState(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, q := range []string{"", "?state=forged", "?state=" + strings.Repeat("x", 43) + "&returnUrl=https://evil.example"} {
		t.Run(q, func(t *testing.T) {
			resp := h.get(h.browser(), "/bff/signed-out"+q)
			b := body(t, resp)
			if resp.StatusCode != http.StatusOK || strings.Contains(b, "evil.example") {
				t.Errorf("status %d, body mentions evil: %v; want the neutral page", resp.StatusCode, strings.Contains(b, "evil.example"))
			}
			if !strings.Contains(b, "signed out") {
				t.Errorf("page does not say the user is signed out")
			}
		})
	}
}

func TestRPInitiatedLogoutWithoutEndSession(t *testing.T) {
	h := newHarness(t, harnessOpts{op: testop.Config{NoEndSession: true}})
	c := h.login("/")
	resp, visited := h.follow(c, h.logoutURL(c))
	if last := visited[len(visited)-1]; resp.StatusCode != http.StatusOK || last != h.srv.URL+"/" {
		t.Errorf("ended at %s (%d), want the post-logout page /", last, resp.StatusCode)
	}
	if h.signedIn(c) {
		t.Error("the session survived")
	}
}

func TestLogoutWithoutSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp := h.get(h.browser(), "/bff/logout?sid=x")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/bff/signed-out" {
		t.Errorf("status %d to %q, want 302 to /bff/signed-out", resp.StatusCode, loc)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if !cond() {
			return fmt.Errorf("timed out waiting for: %s", what)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestLogoutWithoutIdPSid(t *testing.T) {
	h := newHarness(t, harnessOpts{op: testop.Config{OmitSID: true}})
	c := h.login("/")
	resp := h.get(c, "/bff/user", "X-CSRF", "1")
	var user map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&user); err != nil {
		t.Fatal(err)
	}
	logoutURL, _ := user["logout_url"].(string)
	if strings.Contains(logoutURL, h.sessionOf(c).ID) {
		t.Fatalf("logout_url %q carries the raw session id", logoutURL)
	}
	if resp := h.get(c, logoutURL); resp.StatusCode != http.StatusFound {
		t.Errorf("logout through logout_url: %d, want 302", resp.StatusCode)
	}
	if h.signedIn(c) {
		t.Error("the session survived")
	}
}
