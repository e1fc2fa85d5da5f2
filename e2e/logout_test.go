package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRPInitiatedLogout: #logout goes through the gateway's /bff/logout to
// the IdP's end_session page; "Yes" there brings the browser back through
// /bff/signed-out (state checked) to the app, signed out. The gateway
// session is gone and its refresh token revoked at the IdP.
func TestRPInitiatedLogout(t *testing.T) {
	s := startStack(t)
	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if r := tb.fetch("/bff/user"); r.Status != 200 {
		t.Fatalf("/bff/user after login = %d %s, want 200", r.Status, r.Body)
	}

	tb.click("#logout")
	idp, _ := url.Parse(s.idpURL)
	end := tb.waitURL("at the IdP's end_session page", func(u *url.URL) bool {
		return u.Host == idp.Host && strings.HasPrefix(u.Path, "/session/end")
	})
	q := end.Query()
	if q.Get("state") == "" || q.Get("post_logout_redirect_uri") != s.gwURL+"/bff/signed-out" || q.Get("id_token_hint") == "" {
		t.Errorf("end_session request lacks state, id_token_hint or the right post_logout_redirect_uri: %s", redactQuery(end))
	}
	tb.click("#logout-yes")

	gw, _ := url.Parse(s.gwURL)
	back := tb.waitURL("back on the app", func(u *url.URL) bool {
		return u.Host == gw.Host && !strings.HasPrefix(u.Path, "/bff/")
	})
	if back.Path != "/" {
		t.Errorf("landed on %s, want the post_logout_redirect /", back)
	}
	tb.waitAppState("signed-out")
	if txt := tb.text("#status"); txt != "Signed out" {
		t.Errorf("#status = %q, want Signed out", txt)
	}
	if r := tb.fetch("/bff/user"); r.Status != 401 {
		t.Errorf("/bff/user after logout = %d %s, want 401", r.Status, r.Body)
	}
	if r := tb.fetch("/api/hello"); r.Status != 401 {
		t.Errorf("/api/hello after logout = %d %s, want 401", r.Status, r.Body)
	}
	if got := s.idpEvents("end_session.success", nil); len(got) != 1 {
		t.Errorf("IdP logged %d end_session.success events, want 1", len(got))
	}

	// The refresh token was revoked at the IdP: the gateway called the
	// revocation endpoint, and oidc-provider destroyed a refresh token of
	// client demo (both logged by e2e/testdata/idp-hooks.mjs).
	err := eventually(2*time.Second, func() error {
		if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/token/revocation", "status": "200"})); n == 0 {
			return fmt.Errorf("the IdP got no successful POST /token/revocation")
		}
		if n := len(s.idpEvents("e2e.refresh_token.destroyed", map[string]string{"client_id": "demo", "sub": "alice"})); n == 0 {
			return fmt.Errorf("the IdP destroyed no refresh token of client demo")
		}
		return nil
	})
	if err != nil {
		t.Errorf("refresh token not revoked at logout: %v", err)
	}
}

// TestBackchannelLogoutViaOtherClient: the user signs out at the IdP through
// another client (other), choosing "Yes, sign me out everywhere"; the IdP
// sends a back-channel logout token to the gateway, which ends the session.
func TestBackchannelLogoutViaOtherClient(t *testing.T) {
	s := startStack(t)
	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if r := tb.fetch("/api/hello"); r.Status != 200 {
		t.Fatalf("/api/hello after login = %d %s, want 200", r.Status, r.Body)
	}

	tb.navigate(s.idpSignOutURL())
	tb.click("#logout-yes")
	tb.waitVisible("#other-signed-out")
	loggedOut := time.Now()

	// Back on the app's origin (a page that does not call /bff/user itself,
	// so the polls below see the session as the back-channel left it).
	tb.navigate(s.gwURL + "/bff/nothing-here")
	var last fetchResult
	err := eventually(2*time.Second, func() error {
		last = tb.fetch("/api/hello")
		if last.Status != 401 {
			return fmt.Errorf("/api/hello = %d", last.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the session outlived the back-channel logout by %v: /api/hello = %d %s",
			time.Since(loggedOut).Round(time.Millisecond), last.Status, last.Body)
	}
	if r := tb.fetch("/bff/user"); r.Status != 401 {
		t.Errorf("/bff/user after back-channel logout = %d %s, want 401", r.Status, r.Body)
	}
	if got := s.idpEvents("backchannel.success", map[string]string{"client_id": "demo", "sub": "alice"}); len(got) != 1 {
		t.Errorf("IdP logged %d backchannel.success for demo, want 1; errors: %v", len(got), s.idpEvents("backchannel.error", nil))
	}
	// The SPA agrees.
	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Errorf("the SPA shows %q after back-channel logout, want signed-out", st)
	}
}

// TestSingleSignOutTwoApps: two apps behind one gateway (demo at /, demo2 at
// /app2/), each its own client at the IdP. The second login is SSO (no
// password), and one logout at the IdP ends both gateway sessions: demo's
// by RP-initiated logout, demo2's by the back-channel logout that the IdP
// sends to /app2/bff/backchannel-logout.
func TestSingleSignOutTwoApps(t *testing.T) {
	s := startStack(t, appDemo, appDemo2)
	tb := newBrowser(t).newTab()

	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tb.loginToApp(s.gwURL+"/app2/", "alice", "", true)
	if n := len(s.idpEvents("login.success", nil)); n != 1 {
		t.Errorf("the IdP logged %d password logins, want 1 (the second login is SSO)", n)
	}
	if r := tb.fetch(s.gwURL + "/app2/bff/user"); r.Status != 200 {
		t.Fatalf("/app2/bff/user = %d %s, want 200", r.Status, r.Body)
	}
	if r := tb.fetch(s.gwURL + "/app2/api/hello"); r.Status != 200 || !strings.Contains(r.Body, `"client_id":"demo2"`) {
		t.Errorf("/app2/api/hello = %d %s, want 200 with client_id demo2", r.Status, r.Body)
	}
	if r := tb.fetch(s.gwURL + "/bff/user"); r.Status != 200 {
		t.Fatalf("/bff/user = %d %s, want 200", r.Status, r.Body)
	}

	// Sign out of app 1 (RP-initiated), "Yes" = everywhere.
	tb.openApp(s.gwURL + "/")
	tb.click("#logout")
	tb.click("#logout-yes")
	tb.waitAppState("signed-out")

	var last fetchResult
	err := eventually(2*time.Second, func() error {
		last = tb.fetch(s.gwURL + "/app2/bff/user")
		if last.Status != 401 {
			return fmt.Errorf("/app2/bff/user = %d", last.Status)
		}
		return nil
	})
	if err != nil {
		t.Errorf("app 2's session outlived the IdP logout: /app2/bff/user = %d %s", last.Status, last.Body)
	}
	if r := tb.fetch(s.gwURL + "/bff/user"); r.Status != 401 {
		t.Errorf("/bff/user after logout = %d %s, want 401", r.Status, r.Body)
	}
	if r := tb.fetch(s.gwURL + "/app2/api/hello"); r.Status != 401 {
		t.Errorf("/app2/api/hello after logout = %d %s, want 401", r.Status, r.Body)
	}
	if got := s.idpEvents("backchannel.success", map[string]string{"client_id": "demo2"}); len(got) != 1 {
		t.Errorf("IdP logged %d backchannel.success for demo2, want 1; errors: %v", len(got), s.idpEvents("backchannel.error", nil))
	}
	if st := tb.openApp(s.gwURL + "/app2/"); st != "signed-out" {
		t.Errorf("app 2 shows %q after the logout, want signed-out", st)
	}
}

// redactQuery shows u with id_token_hint shortened (it is a token).
func redactQuery(u *url.URL) string {
	q := u.Query()
	if v := q.Get("id_token_hint"); len(v) > 12 {
		q.Set("id_token_hint", v[:12]+"…")
	}
	c := *u
	c.RawQuery = q.Encode()
	return c.String()
}
