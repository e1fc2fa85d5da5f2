package bff

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
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
