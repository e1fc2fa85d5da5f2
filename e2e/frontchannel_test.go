package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// idp6FrontchannelClients registers the gateway's app "demo" at e2e/idp6
// for front-channel logout only (no backchannel_logout_uri), with sid and
// iss required, plus the IdP's own client "other".
const idp6FrontchannelClients = `[
  {
    "client_id": "demo",
    "client_secret": "${DEMO_CLIENT_SECRET}",
    "client_name": "bffgate demo (front-channel)",
    "redirect_uris": ["${GATEWAY_URL}/bff/callback"],
    "post_logout_redirect_uris": ["${GATEWAY_URL}/bff/signed-out"],
    "frontchannel_logout_uri": "${GATEWAY_URL}/bff/frontchannel-logout",
    "frontchannel_logout_session_required": true,
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic"
  },
  {
    "client_id": "other",
    "client_secret": "${OTHER_CLIENT_SECRET}",
    "client_name": "another client",
    "redirect_uris": ["${ISSUER}/other/callback"],
    "post_logout_redirect_uris": ["${ISSUER}/other/signed-out"],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic"
  }
]`

// TestFrontchannelLogoutIdP6 (issue 5, scenario 5): the user signs out at
// oidc-provider 6.31.1 through client "other"; the IdP's logout page loads
// the gateway's /bff/frontchannel-logout?iss=…&sid=… in an iframe, which
// ends the session by iss+sid (frontchannel_logout_session_required: the
// cookie alone would be refused) and nests the downstream app's
// front-channel iframe with the gateway's iss and the sid.
//
//   - cross-site: the IdP on "localhost", another site than the gateway on
//     127.0.0.1, so the browser does not send the gateway's SameSite=Lax
//     cookie in the IdP's iframe (as with blocked third-party cookies): the
//     session ends all the same, and the browser keeps the stale cookie,
//     which the gateway never saw;
//   - same-site: the IdP on 127.0.0.1 (another port): the cookie travels,
//     and the gateway clears it too.
func TestFrontchannelLogoutIdP6(t *testing.T) {
	t.Run("cross-site", func(t *testing.T) { testFrontchannelLogout(t, "localhost", true) })
	t.Run("same-site", func(t *testing.T) { testFrontchannelLogout(t, "127.0.0.1", false) })
}

func testFrontchannelLogout(t *testing.T, idpHost string, crossSite bool) {
	rec := startFrontchannelRecorder(t)
	app := appDemo
	app.settings = "allow_missing_exp = true\nfrontchannel_logout_session_required = true\n"
	app.downstream = fmt.Sprintf(`
  [[apps.downstream]]
  frontchannel_logout_uri = %q
  session_required = true
  audience = "fc-app"
  api = "/api/"
`, rec.url+"/fc")
	s := startStackWith(t, stackOptions{idp6: true, idpHost: idpHost, clientsJSON: idp6FrontchannelClients}, app)
	tb := newBrowser(t).newTab()

	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	tb.bffUser()
	if r := tb.fetch("/api/hello"); r.Status != 200 { // the downstream is now "used"
		t.Fatalf("/api/hello = %d %s, want 200", r.Status, r.Body)
	}
	const cookieName = "bffgate-demo"
	if tb.cookie(s.gwURL+"/", cookieName) == nil {
		t.Fatalf("no %s cookie after login", cookieName)
	}

	tb.navigate(s.idpSignOutURL())
	tb.click("#logout-yes")
	// The IdP's "Signing out…" page goes on once its iframes have loaded
	// (and a frame's load waits for the frames nested in it).
	tb.waitJS("the IdP's signed-out page", `!!document.querySelector('#other-signed-out, #signed-out')`)

	if got := s.idpEvents("frontchannel.pending", map[string]string{"frames": "1"}); len(got) != 1 {
		t.Errorf("the IdP logged %d frontchannel.pending with 1 frame, want 1", len(got))
	}
	if n := s.waitGatewayRequests("/bff/frontchannel-logout", 200, 1); n != 1 {
		t.Errorf("the gateway answered %d /bff/frontchannel-logout with 200, want 1", n)
	}
	if n := s.waitMetric(1, "bffgate_sessions_ended_total", `cause="frontchannel"`); n != 1 {
		t.Errorf(`bffgate_sessions_ended_total{cause="frontchannel"} = %v, want 1`, n)
	}
	if n := s.metric("bffgate_sessions_ended_total", `cause="backchannel"`); n != 0 {
		t.Errorf(`bffgate_sessions_ended_total{cause="backchannel"} = %v, want 0 (the client has no back-channel)`, n)
	}

	// The nested downstream iframe: the gateway as iss, the IdP's sid.
	hits := rec.hits()
	if len(hits) != 1 {
		t.Fatalf("the downstream front-channel page got %d hits, want 1: %v", len(hits), hits)
	}
	if got := hits[0].Get("iss"); got != s.gwURL {
		t.Errorf("downstream iframe iss = %q, want the gateway's public_url %q", got, s.gwURL)
	}
	if got, want := gatewayHash(hits[0].Get("sid")), s.sessionSIDHash(t); got != want {
		t.Errorf("downstream iframe sid hash = %s, want the IdP's sid of the session (hash %s)", got, want)
	}

	// Cross-site, the cookie did not travel in the iframe: the gateway
	// could not clear it, and the browser still holds it. The session is
	// gone all the same. Same-site, the gateway cleared it.
	held := tb.cookie(s.gwURL+"/", cookieName) != nil
	switch {
	case crossSite && !held:
		t.Errorf("the browser lost the %s cookie: the cross-site front-channel request carried it", cookieName)
	case !crossSite && held:
		t.Errorf("the browser still holds the %s cookie: the gateway did not clear it in the same-site front-channel response", cookieName)
	}
	tb.navigate(s.gwURL + "/bff/nothing-here")
	if r := tb.fetch("/api/hello"); r.Status != 401 {
		t.Errorf("/api/hello after the front-channel logout = %d %s, want 401", r.Status, r.Body)
	}
	if r := tb.fetch("/bff/user"); r.Status != 401 {
		t.Errorf("/bff/user after the front-channel logout = %d %s, want 401", r.Status, r.Body)
	}
}

// bffUser returns the page's /bff/user (it must answer 200).
func (tb *tab) bffUser() bffUser {
	tb.t.Helper()
	r := tb.fetch("/bff/user")
	var u bffUser
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &u) != nil || u.Sub == "" {
		tb.t.Fatalf("/bff/user = %d %s, want 200 with the user", r.Status, r.Body)
	}
	return u
}

// bffUser is the part of /bff/user the tests read.
type bffUser struct {
	Sub          string `json:"sub"`
	SessionState string `json:"session_state"`
}

// fcRecorder is a downstream app's front-channel logout page: it records
// the query of every hit.
type fcRecorder struct {
	url string
	mu  sync.Mutex
	qs  []url.Values
}

func startFrontchannelRecorder(t *testing.T) *fcRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fcRecorder{url: "http://" + ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path != "/fc" {
				http.NotFound(w, req)
				return
			}
			r.mu.Lock()
			r.qs = append(r.qs, req.URL.Query())
			r.mu.Unlock()
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!DOCTYPE html><title>downstream signed out</title><p id="fc-done">signed out</p>`)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *fcRecorder) hits() []url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]url.Values(nil), r.qs...)
}

// String shows the hits for failure messages.
func (r *fcRecorder) String() string {
	var b strings.Builder
	for _, q := range r.hits() {
		b.WriteString(q.Encode() + "\n")
	}
	return b.String()
}
