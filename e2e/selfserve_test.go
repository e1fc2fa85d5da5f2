package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bffgate/bffgate/internal/proctest"
)

// silentOutcome is what the demo SPA's #silent-result shows.
type silentOutcome struct {
	State string `json:"state"`
	Error string `json:"error"`
}

// trySilentLogin clicks the SPA's "Try silent sign-in" and waits for its
// outcome.
func (tb *tab) trySilentLogin() silentOutcome {
	tb.t.Helper()
	tb.click("#silent-login")
	tb.waitJS("wait for #silent-result", `(() => { const s = document.querySelector('#silent-result'); return s.dataset.state !== 'idle' && s.dataset.state !== 'loading'; })()`)
	var o silentOutcome
	raw := tb.eval("#silent-result", `(() => { const s = document.querySelector('#silent-result'); return {state: s.dataset.state, error: s.dataset.error || ''}; })()`)
	if err := json.Unmarshal(raw, &o); err != nil {
		tb.t.Fatal(err)
	}
	return o
}

// TestSilentLogin (issue 16, item 2): with the IdP on the app's site, the
// SPA's silentLogin() (a hidden iframe on bff/silent-login, prompt=none)
// answers false with login_required while the IdP has no session for the
// browser, without an error page; once the user has signed in at the IdP
// and the gateway session is gone (ended through POST bff/sessions/end,
// which keeps the IdP session), it answers true without any page of the
// IdP and /bff/user works again.
func TestSilentLogin(t *testing.T) {
	// par = "off": the authorization request travels in the browser's
	// URL, where the test sees prompt=none (TestPARLogin covers PAR).
	s := startStack(t, appSpec{name: "demo", prefix: "/", clientID: "demo", settings: `par = "off"`})
	tb := newBrowser(t).newTab()
	netlog := tb.recordNetwork()

	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Fatalf("#status = %q, want signed-out", st)
	}
	if o := tb.trySilentLogin(); o.State != "none" || o.Error != "login_required" {
		t.Errorf("silent sign-in without an IdP session: %+v, want none with login_required", o)
	}
	callbacks := 0
	netlog.mu.Lock()
	for _, r := range netlog.responses {
		if u, err := url.Parse(r.URL); err == nil && u.Path == "/bff/callback" {
			callbacks++
			if r.Status != 200 {
				t.Errorf("silent callback answered %d, want 200 (the result page, not an error page)", r.Status)
			}
		}
	}
	netlog.mu.Unlock()
	if callbacks != 1 {
		t.Errorf("%d callbacks, want the one of the silent attempt", callbacks)
	}
	for _, u := range netlog.requestsTo("/auth") {
		if u.Query().Get("prompt") != "none" || !strings.HasPrefix(u.Query().Get("state"), "silent.") {
			t.Errorf("authorization request %s, want prompt=none and a silent state", u)
		}
	}
	if n := tb.eval("iframes", `document.querySelectorAll('iframe').length`); string(n) != "0" {
		t.Errorf("%s iframes left in the page, want the hidden one removed", n)
	}

	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	first := tb.fetch("/bff/user")

	// A browser context without the gateway's session cookie (the session
	// itself is left alone), with the IdP's session.
	tb.deleteCookie(s.gwURL+"/", "bffgate-demo")
	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Fatalf("without the gateway cookie #status = %q, want signed-out", st)
	}
	loginPages := len(s.idpEvents("login.success", nil))
	if o := tb.trySilentLogin(); o.State != "ok" {
		t.Fatalf("silent sign-in with an IdP session: %+v, want ok", o)
	}
	tb.waitAppState("signed-in")
	if sub := tb.text("#user-sub"); sub != "alice" {
		t.Errorf("#user-sub = %q after the silent sign-in, want alice", sub)
	}
	second := tb.fetch("/bff/user")
	if second.Status != 200 || second.Body == first.Body {
		t.Errorf("/bff/user after the silent sign-in = %d, want 200 with a new session", second.Status)
	}
	if r := tb.fetch("/api/hello"); r.Status != 200 {
		t.Errorf("/api/hello after the silent sign-in = %d %s, want 200", r.Status, r.Body)
	}
	if n := len(s.idpEvents("login.success", nil)); n != loginPages {
		t.Errorf("the IdP logged %d password logins during the silent sign-in, want none", n-loginPages)
	}
	if n := s.metric("bffgate_logins_total", `result="ok"`, `reason="silent"`); n != 1 {
		t.Errorf(`bffgate_logins_total{result="ok",reason="silent"} = %v, want 1`, n)
	}

	// Ending the session through the gateway revokes its refresh token;
	// this IdP (oidc-provider's default) drops the grant with it, so the
	// next silent login needs the user's consent again: consent_required
	// is an answer too, not an error page.
	r := tb.fetchJS(`(async () => {
  const { sessions } = await (await fetch('/bff/sessions', {headers: {'X-CSRF': '1'}})).json();
  const cur = sessions.find((s) => s.current);
  return fetch('/bff/sessions/end', {method: 'POST', headers: {'X-CSRF': '1', 'Content-Type': 'application/json'}, body: JSON.stringify({handle: cur.handle})});
})()`)
	if r.Status != 200 {
		t.Fatalf("ending the current session: %d %s", r.Status, r.Body)
	}
	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Fatalf("after ending the gateway session #status = %q, want signed-out", st)
	}
	_ = eventually(5*time.Second, func() error {
		if len(s.idpEvents("e2e.grant.revoked", nil)) == 0 {
			return fmt.Errorf("grant not revoked yet")
		}
		return nil
	})
	if o := tb.trySilentLogin(); o.State != "none" || o.Error != "consent_required" {
		t.Errorf("silent sign-in after the grant was revoked: %+v, want none with consent_required", o)
	}
}

// deleteCookie deletes the browser's cookie name for URL u.
func (tb *tab) deleteCookie(u, name string) {
	tb.t.Helper()
	runTab(tb, "delete cookie "+name, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, t, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: u})
	})
}

// TestUserEndsOtherSession (issue 16, item 4): two browsers sign in as the
// same user; the first lists both sessions in the demo SPA and ends the
// other one with its End button. The other browser's open tab learns it
// from its event stream (cause user) and shows signed out, its /bff/user
// is 401, the demo API gets the gateway's logout token, and the refresh
// token is revoked at the IdP.
func TestUserEndsOtherSession(t *testing.T) {
	s := startStack(t)
	b1, b2 := newBrowser(t), newBrowser(t)
	tab1, tab2 := b1.newTab(), b2.newTab()
	net2 := tab2.recordNetwork()
	tab1.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tab2.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tab2.waitEventStream(net2, "/")
	if r := tab2.fetch("/api/hello"); r.Status != 200 { // the demo API is notified if used
		t.Fatalf("/api/hello = %d", r.Status)
	}

	tab1.click("#refresh-sessions")
	tab1.waitJS("two sessions listed", `document.querySelectorAll('#sessions-list li[data-handle]').length === 2`)
	var browsers []string
	_ = json.Unmarshal(tab1.eval("browsers", `[...document.querySelectorAll('#sessions-list .browser')].map((e) => e.textContent)`), &browsers)
	for _, b := range browsers {
		// Headless Chromium says HeadlessChrome/N in its User-Agent.
		if !strings.HasPrefix(b, "Chrome ") && !strings.HasPrefix(b, "Headless Chrome ") {
			t.Errorf("session listed as %q, want the Chromium it is", b)
		}
	}
	tab1.click(`#sessions-list li[data-current="false"] button.end`)
	ended := time.Now()
	tab1.waitJS("one session left", `document.querySelectorAll('#sessions-list li[data-handle]').length === 1 && document.querySelector('#sessions-list li[data-current="true"]') !== null`)

	tab2.waitAppState("signed-out")
	var cause string
	_ = json.Unmarshal(tab2.eval("#status cause", `document.querySelector('#status').dataset.cause || ''`), &cause)
	if cause != "user" {
		t.Errorf("the other browser's #status data-cause = %q, want user (its event stream's logout)", cause)
	}
	t.Logf("the other browser showed signed out %v after End", time.Since(ended).Round(time.Millisecond))
	if r := tab2.fetch("/bff/user"); r.Status != 401 {
		t.Errorf("the ended browser's /bff/user = %d, want 401", r.Status)
	}
	if r := tab1.fetch("/bff/user"); r.Status != 200 {
		t.Errorf("the browser that ended the other = %d, want 200", r.Status)
	}
	if n := s.waitMetric(1, "bffgate_sessions_ended_total", `cause="user"`); n != 1 {
		t.Errorf(`bffgate_sessions_ended_total{cause="user"} = %v, want 1`, n)
	}
	if n := s.waitMetric(1, "bffgate_token_revocations_total", `result="revoked"`); n != 1 {
		t.Errorf(`bffgate_token_revocations_total{result="revoked"} = %v, want 1`, n)
	}
	err := eventually(5*time.Second, func() error {
		for _, line := range s.api.log.Lines() {
			if strings.Contains(line, `msg="valid logout token"`) {
				return nil
			}
		}
		return fmt.Errorf("no valid logout token logged")
	})
	if err != nil {
		t.Errorf("the demo API got no logout token for the ended session:\n%s", proctest.Tail(s.api.log.String(), 20))
	}
}

// TestSilentLoginCrossSite: with the IdP on another site than the app
// (localhost against 127.0.0.1), the IdP's SameSite=Lax session cookie is
// not sent in the app's iframe, so silentLogin() answers false although
// the user is signed in at the IdP: the README's "when it works".
func TestSilentLoginCrossSite(t *testing.T) {
	s := startStackWith(t, stackOptions{idpHost: "localhost"})
	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tb.deleteCookie(s.gwURL+"/", "bffgate-demo")
	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Fatalf("without the gateway cookie #status = %q, want signed-out", st)
	}
	if o := tb.trySilentLogin(); o.State != "none" || o.Error != "login_required" {
		t.Errorf("silent sign-in across sites: %+v, want none with login_required (the IdP cannot see its session)", o)
	}
	if n := len(s.idpEvents("login.success", nil)); n != 1 {
		t.Errorf("the IdP logged %d password logins, want the one before", n)
	}
}
