package bff

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

func withUserinfo(a *AppConfig) { a.UserInfo = true }

// TestUserinfoClaimsMerged: with userinfo = true, /bff/user shows the
// claims only userinfo serves, plain or signed; the ID token's
// iss/aud/sub win and the IdP's sid never shows.
func TestUserinfoClaimsMerged(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "jwt"}[signed], func(t *testing.T) {
			h := newHarness(t, harnessOpts{mutate: withUserinfo})
			h.op.SetUserinfo(testop.UserinfoOpts{Signed: signed, Extra: map[string]any{
				"department": "wonderland", "iss": "https://evil.example", "aud": "x", "sid": "leak",
			}})
			c := h.login("/")
			_, user := h.userJSON(c)
			if user["department"] != "wonderland" {
				t.Errorf("/bff/user = %v, want the userinfo-only claim department", user)
			}
			if user["iss"] != h.op.URL || user["aud"] != h.op.ClientID() || user["sid"] != nil {
				t.Errorf("/bff/user iss=%v aud=%v sid=%v, want the ID token's and no sid", user["iss"], user["aud"], user["sid"])
			}
		})
	}
}

// TestUserinfoRefused: a userinfo sub other than the ID token's, or a
// signed userinfo for another audience, fails the login with a clear
// reason and creates no session.
func TestUserinfoRefused(t *testing.T) {
	for name, o := range map[string]testop.UserinfoOpts{
		"sub mismatch":  {Sub: "mallory"},
		"jwt other aud": {Signed: true, Audience: "someone-else"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{mutate: withUserinfo})
			h.op.SetUserinfo(o)
			c := h.browser()
			resp, _ := h.follow(c, "/bff/login?returnUrl=%2F")
			b := body(t, resp)
			if resp.StatusCode == http.StatusOK && !strings.Contains(b, "user information") {
				t.Errorf("login ended %d %q, want it refused over the user information", resp.StatusCode, b)
			}
			if h.signedIn(c) {
				t.Error("a session was created")
			}
		})
	}
}

// expireTokens makes the session's access token expired, so that the
// next API call refreshes it.
func (h *harness) expireTokens(c *http.Client) {
	h.t.Helper()
	s := h.sessionOf(c)
	if _, _, err := h.mgr.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
		session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: time.Now().Add(-time.Minute)}); err != nil {
		h.t.Fatal(err)
	}
}

// TestUserinfoOnRefresh: with userinfo_on_refresh = true a refresh
// fetches userinfo again and /bff/user shows its new claims; a userinfo
// sub other than the session's after a refresh ends the session.
func TestUserinfoOnRefresh(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) { a.UserInfo, a.UserInfoOnRefresh = true, true }})
	h.op.SetUserinfo(testop.UserinfoOpts{Extra: map[string]any{"department": "before"}})
	c := h.login("/")
	h.op.SetUserinfo(testop.UserinfoOpts{Extra: map[string]any{"department": "after"}})
	h.expireTokens(c)
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("API status = %d, want 200", resp.StatusCode)
	}
	if _, user := h.userJSON(c); user["department"] != "after" {
		t.Errorf("/bff/user department = %v after a refresh, want the new userinfo's", user["department"])
	}

	h.op.SetUserinfo(testop.UserinfoOpts{Sub: "mallory"})
	h.expireTokens(c)
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API status after a refresh with a foreign userinfo sub = %d, want 401", resp.StatusCode)
	}
	if h.signedIn(c) {
		t.Error("the session survived a foreign userinfo sub")
	}
}
