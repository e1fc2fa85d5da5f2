package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// clientTokenAPIs are two [[apps.apis]] with the gateway's client token
// for the demo API: /capi/ (scope api:read, the API's resource: a JWT
// for it) and /capi2/ (another grant: no scope).
const clientTokenAPIs = `
  [[apps.apis]]
  path = "/capi/"
  upstream = "${API_URL}/api"
  strip_prefix = true
  token = "client"
  client_scopes = ["api:read"]
  client_resource = "` + demoAPIResource + `"

  [[apps.apis]]
  path = "/capi2/"
  upstream = "${API_URL}/api"
  strip_prefix = true
  token = "user_or_client"
  client_resource = "` + demoAPIResource + `"
`

// TestClientTokenAPI (issue 16 item 3): an API with token = "client"
// against oidc-provider 9. An anonymous call (X-CSRF: 1, no session)
// reaches the demo API with a JWT access token for the API's resource
// (RFC 8707/9068: aud the resource, sub and client_id the gateway's
// client), which the API verifies with the IdP's keys; concurrent calls
// share one client_credentials grant. Without X-CSRF the call is
// refused. With the IdP down, an API whose token is not cached yet
// answers 503 JSON that names neither the IdP nor the token.
func TestClientTokenAPI(t *testing.T) {
	app := appDemo
	app.downstream = clientTokenAPIs
	s := startStack(t, app)

	call := func(path string, csrf bool) (int, map[string]any, string) {
		req, _ := http.NewRequest(http.MethodGet, s.gwURL+path, nil)
		if csrf {
			req.Header.Set("X-CSRF", "1")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil, ""
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		return res.StatusCode, body, string(raw)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			code, body, raw := call("/capi/hello", true)
			if code != http.StatusOK {
				t.Errorf("GET /capi/hello: %d %s, want 200", code, raw)
				return
			}
			want := map[string]any{"client_id": "demo", "sub": "demo", "aud": demoAPIResource, "jwt": true, "scope": "api:read"}
			for k, v := range want {
				if body[k] != v {
					t.Errorf("the API saw %s = %v, want %v (body %s)", k, body[k], v, raw)
				}
			}
		})
	}
	wg.Wait()
	if n := len(s.idpEvents("grant.success", map[string]string{"grant_type": "client_credentials"})); n != 1 {
		t.Errorf("client_credentials grants at the IdP = %d, want 1 for 8 calls", n)
	}
	if code, _, raw := call("/capi/hello", false); code != http.StatusUnauthorized {
		t.Errorf("without X-CSRF: %d %s, want 401", code, raw)
	}
	if code, _, raw := call("/api/hello", true); code != http.StatusUnauthorized {
		t.Errorf("token = \"user\" without a session: %d %s, want 401", code, raw)
	}

	s.idp.Stop()
	code, body, raw := call("/capi2/hello", true)
	if code != http.StatusServiceUnavailable || body["error"] != "token_unavailable" {
		t.Errorf("IdP down: %d %s, want 503 token_unavailable", code, raw)
	}
	if strings.Contains(raw, strings.TrimPrefix(s.idpURL, "http://")) || strings.Contains(raw, "eyJ") {
		t.Errorf("IdP down: the answer %s reveals the IdP or a token", raw)
	}
	// The cached token still serves the first API.
	if code, _, raw := call("/capi/hello", true); code != http.StatusOK {
		t.Errorf("IdP down, token cached: %d %s, want 200", code, raw)
	}
}
