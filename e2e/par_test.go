package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestPARLogin (issue 17, items 1 and 2): with oidc-provider 9, which
// publishes a pushed authorization request endpoint (/request) and
// advertises authorization_response_iss_parameter_supported, the
// gateway's default par = "auto" pushes the authorization request: the
// browser goes to /auth with only client_id and request_uri, and the
// callback gets the issuer as iss (RFC 9207), which it checks. The
// silent login (prompt=none) is pushed as well.
func TestPARLogin(t *testing.T) {
	s := startStack(t)
	resp, err := http.Get(s.idpURL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		PAR string `json:"pushed_authorization_request_endpoint"`
		ISS bool   `json:"authorization_response_iss_parameter_supported"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.PAR != s.idpURL+"/request" || !disc.ISS {
		t.Fatalf("IdP discovery: %+v (%v), want a PAR endpoint and authorization_response_iss_parameter_supported", disc, err)
	}

	tb := newBrowser(t).newTab()
	netlog := tb.recordNetwork()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if sub := tb.text("#user-sub"); sub != "alice" {
		t.Fatalf("#user-sub = %q, want alice", sub)
	}

	if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/request", "status": "201"})); n != 1 {
		t.Errorf("the IdP logged %d pushed authorization requests (POST /request 201), want 1", n)
	}
	auths := s.idpEvents("e2e.http", map[string]string{"method": "GET", "path": "/auth"})
	if len(auths) == 0 {
		t.Fatal("the IdP logged no GET /auth")
	}
	for _, e := range auths {
		var params []string
		for _, p := range e["params"].([]any) {
			params = append(params, p.(string))
		}
		slices.Sort(params)
		if !slices.Equal(params, []string{"client_id", "request_uri"}) {
			t.Errorf("the IdP's GET /auth had parameters %q, want only client_id and request_uri", params)
		}
	}
	for _, u := range netlog.requestsTo("/auth") {
		for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "scope"} {
			if u.Query().Has(k) {
				t.Errorf("the browser's authorization URL carries %s: %s", k, u)
			}
		}
	}
	callbacks := netlog.requestsTo("/bff/callback")
	if len(callbacks) != 1 {
		t.Fatalf("%d callbacks, want 1", len(callbacks))
	}
	if iss := callbacks[0].Query().Get("iss"); iss != s.idpURL {
		t.Errorf("the callback's iss = %q, want the issuer %s", iss, s.idpURL)
	}
	if n := s.metric("bffgate_logins_total", `app="demo"`, `result="ok"`); n != 1 {
		t.Errorf("bffgate_logins_total{result=ok} = %v, want 1", n)
	}

	// The silent login pushes its request (prompt=none) too.
	pushed := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/request", "status": "201"}))
	tb.deleteCookie(s.gwURL+"/", "bffgate-demo")
	if st := tb.openApp(s.gwURL + "/"); st != "signed-out" {
		t.Fatalf("without the gateway cookie #status = %q, want signed-out", st)
	}
	if o := tb.trySilentLogin(); o.State != "ok" {
		t.Fatalf("silent sign-in with PAR and an IdP session: %+v, want ok", o)
	}
	if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/request", "status": "201"})); n != pushed+1 {
		t.Errorf("pushed authorization requests after the silent login = %d, want %d", n, pushed+1)
	}
	if n := s.metric("bffgate_logins_total", `app="demo"`, `result="ok"`, `reason="silent"`); n != 1 {
		t.Errorf(`bffgate_logins_total{result="ok",reason="silent"} = %v, want 1`, n)
	}
}
