package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSessionManagementIdP6 (issue 5, scenario 6), against oidc-provider
// 6.31.1 with Session Management:
//
//   - the gateway keeps the IdP's session_state: /bff/user reports the value
//     the IdP put on the redirect to /bff/callback;
//   - the SPA origin's test page (examples/spa/static/checksession-test.html)
//     polls the gateway's /bff/check-session iframe with
//     client_id + " " + session_state: "unchanged" while signed in, "error"
//     for a malformed message, no answer at all to another origin, and
//     "changed" once the user has signed out at the IdP (back-channel and
//     front-channel, whichever arrives first);
//   - on "changed" the page stops polling: the gateway sees no further
//     /bff/user request in the next 2 s.
func TestSessionManagementIdP6(t *testing.T) {
	app := appDemo
	// oidc-provider 6 logout tokens have no exp.
	app.settings = "allow_missing_exp = true\n"
	s := startStackWith(t, stackOptions{idp6: true}, app)
	b := newBrowser(t)
	tb := b.newTab()
	netlog := tb.recordNetwork()

	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	callbacks := netlog.requestsTo("/bff/callback")
	if len(callbacks) == 0 {
		t.Fatal("saw no request to /bff/callback")
	}
	idpState := callbacks[len(callbacks)-1].Query().Get("session_state")
	if idpState == "" {
		t.Fatalf("the IdP's redirect to /bff/callback has no session_state: %s", redactQuery(callbacks[len(callbacks)-1]))
	}
	user := tb.bffUser()
	if user.SessionState != idpState || strings.HasPrefix(user.SessionState, "gw.") {
		t.Errorf("/bff/user session_state = %q, want the IdP's %q", user.SessionState, idpState)
	}

	// The test page, polling every 250 ms.
	tb.navigate(s.gwURL + "/checksession-test.html?client_id=demo&interval=250")
	tb.waitJS(`the first "unchanged"`, `document.querySelector('#monitor').dataset.last === 'unchanged'`)
	if got := tb.text("#session-state"); got != idpState {
		t.Errorf("the test page polls with session_state %q, want %q", got, idpState)
	}
	tb.click("#probe-malformed")
	tb.waitJS(`"error" for the malformed message`, `!!document.querySelector('#answers li[data-answer="error"]')`)

	// Another origin gets no answer, whether it frames the check-session
	// page (refused: frame-ancestors 'self') or opens it in a window.
	other := b.newTab()
	if answers := probeCheckSessionFromOtherOrigin(t, other, s.gwURL, "demo "+idpState); len(answers) != 0 {
		t.Errorf("the check-session page answered another origin: %q", answers)
	}
	// The probe was real: its frame and its window did fetch the page
	// (besides the test page's own iframe).
	if n := s.waitGatewayRequests("/bff/check-session", 200, 3); n < 3 {
		t.Errorf("the gateway served /bff/check-session %d times, want 3 (test page, other origin's frame and window)", n)
	}
	if st := jsString(tb, `document.querySelector('#monitor').dataset.state`); st != "polling" {
		t.Fatalf("the test page is %q before the logout, want polling", st)
	}

	// Sign out at the IdP, in the other tab.
	other.navigate(s.idpSignOutURL())
	other.click("#logout-yes")
	confirmed := time.Now()
	tb.waitJS(`"changed"`, `document.querySelector('#monitor').dataset.state === 'changed'`)
	t.Logf(`"changed" %v after the confirmation at the IdP`, time.Since(confirmed).Round(time.Millisecond))
	if last := jsString(tb, `document.querySelector('#monitor').dataset.last`); last != "changed" {
		t.Errorf("last answer = %q, want changed", last)
	}
	ended := s.metric("bffgate_sessions_ended_total", `cause="backchannel"`) + s.metric("bffgate_sessions_ended_total", `cause="frontchannel"`)
	if ended != 1 {
		t.Errorf("bffgate_sessions_ended_total{cause=backchannel|frontchannel} = %v, want 1", ended)
	}

	// No polling loop left: neither the page nor the gateway sees another
	// poll in the next 2 s (eight poll intervals: an absence takes a
	// window of time to observe). gatewayRequests waits for the log to
	// catch up with the requests made so far.
	polls := jsString(tb, `document.querySelector('#polls').textContent`)
	before := s.gatewayRequests("/bff/user", 0)
	time.Sleep(2 * time.Second)
	if after := s.gatewayRequests("/bff/user", 0); after != before {
		t.Errorf("the gateway got %d more /bff/user requests in the 2 s after \"changed\", want 0", after-before)
	}
	if got := jsString(tb, `document.querySelector('#polls').textContent`); got != polls {
		t.Errorf("the test page went on polling after \"changed\": %s polls, then %s", polls, got)
	}
	if r := tb.fetch("/bff/user"); r.Status != 401 {
		t.Errorf("/bff/user after the IdP logout = %d %s, want 401", r.Status, r.Body)
	}
}

// jsString evaluates a JavaScript expression that yields a string.
func jsString(tb *tab, expr string) string {
	tb.t.Helper()
	var s string
	if err := json.Unmarshal(tb.eval(expr, expr), &s); err != nil {
		tb.t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// probeCheckSessionFromOtherOrigin loads a page on another origin (same
// site: 127.0.0.1, another port) in tb that embeds gwURL/bff/check-session
// in an iframe and opens it in a window (on a click: a user gesture), posts
// message to both for 1.5 s, and returns every answer it received.
// (The test posts, not a timer in the page: the opener of a window is in
// the background, where timers are throttled to one a second.)
func probeCheckSessionFromOtherOrigin(t *testing.T, tb *tab, gwURL, message string) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := gwURL + "/bff/check-session"
	page := fmt.Sprintf(`<!DOCTYPE html><title>other origin</title>
<button id="probe">probe</button>
<iframe id="framed" src=%q></iframe>
<script>
window.answers = [];
window.addEventListener('message', (e) => { window.answers.push(e.origin + ' ' + e.data); });
document.getElementById('probe').addEventListener('click', () => {
  window.win = window.open(%q, 'checksession');
});
window.post = () => {
  for (const w of [window.win, document.getElementById('framed').contentWindow]) {
    try { w.postMessage(%q, %q); } catch (e) {}
  }
  return true;
};
</script>`, target, target, message, origin(gwURL))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, page)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	tb.navigate("http://" + ln.Addr().String() + "/")
	tb.click("#probe")
	tb.waitJS("the window to open", `!!window.win`)
	for range 15 {
		tb.eval("post", `window.post()`)
		time.Sleep(100 * time.Millisecond)
	}
	var answers []string
	if err := json.Unmarshal(tb.eval("answers", `(() => { window.win.close(); return window.answers; })()`), &answers); err != nil {
		t.Fatal(err)
	}
	return answers
}

// origin is scheme://host of u.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}
