package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// fapi2Clients registers the demo API's introspecting client demo and
// the gateway's FAPI 2.0 client: private_key_jwt (its public key inline,
// %s), ES256 ID tokens, DPoP-bound access tokens, PAR required.
const fapi2Clients = `[
  {
    "client_id": "demo",
    "client_secret": "${DEMO_CLIENT_SECRET}",
    "redirect_uris": ["${GATEWAY_URL}/unused"],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic"
  },
  {
    "client_id": "fapi-client",
    "client_name": "bffgate FAPI 2.0",
    "redirect_uris": ["${GATEWAY_URL}/bff/callback"],
    "post_logout_redirect_uris": ["${GATEWAY_URL}/bff/signed-out"],
    "backchannel_logout_uri": "${GATEWAY_URL}/bff/backchannel-logout",
    "backchannel_logout_session_required": true,
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_signing_alg": "ES256",
    "id_token_signed_response_alg": "ES256",
    "dpop_bound_access_tokens": true,
    "require_pushed_authorization_requests": true,
    "jwks": {"keys": [%s]}
  }
]`

// TestFAPI2Profile (issue 17, items 4 and 5): the gateway's app with
// profile = "fapi2" against oidc-provider 9 in its FAPI 2.0 mode
// (FAPI_PROFILE=2.0): a Chromium login through a pushed authorization
// request, private_key_jwt, ES256 ID tokens and the response's iss ends
// with DPoP-bound tokens; the demo API, which checks the binding and the
// proof, accepts the gateway's call, and refuses the same access token
// without the session's key.
func TestFAPI2Profile(t *testing.T) {
	keyFile, pub := clientAssertionKey(t)
	rec := newHeaderRecorder(t)
	app := appSpec{name: "demo", prefix: "/", clientID: "fapi-client",
		settings:    fmt.Sprintf("profile = \"fapi2\"\nclient_assertion_key_file = %q", keyFile),
		idTokenAlgs: `["ES256"]`,
		downstream:  "\n  [[apps.apis]]\n  path = \"/rec/\"\n  upstream = \"" + rec.URL + "\"\n"}
	s := startStackWith(t, stackOptions{
		clientsJSON: fmt.Sprintf(fapi2Clients, pub),
		// Nonces required: the exchange's retry after use_dpop_nonce
		// carries a new private_key_jwt assertion (single-use jti).
		idpEnv: []string{"FAPI_PROFILE=2.0", "DPOP_REQUIRE_NONCE=1"},
	}, app)

	tb := newBrowser(t).newTab()
	tb.loginToApp(s.gwURL+"/", "alice", "wonderland", false)
	if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "path": "/request", "status": "201"})); n != 1 {
		t.Errorf("pushed authorization requests = %d, want 1", n)
	}
	// One use_dpop_nonce, answered by a retry whose new assertion the
	// IdP accepts (no invalid_client).
	for _, e := range s.idpEvents("grant.error", map[string]string{"client_id": "fapi-client"}) {
		if e["error"] != "use_dpop_nonce" {
			t.Errorf("grant error: %v", e)
		}
	}
	if r := tb.fetch("/api/hello"); r.Status != 200 || !strings.Contains(r.Body, `"dpop":true`) {
		t.Fatalf("GET /api/hello = %d %s, want 200 with a DPoP-bound token", r.Status, r.Body)
	}
	tok, _ := rec.dpopCallVia(t, tb)
	// The same access token without the session's key: refused.
	req, _ := http.NewRequest("GET", s.apiURL+"/api/hello", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the access token replayed without the session's key: %d, want 401", resp.StatusCode)
	}
}
