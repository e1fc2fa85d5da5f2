package bff

import (
	"net/http"
	"strings"
	"testing"
)

// tokenKindAPIs adds one API per token kind, all on the harness's
// upstream: /k/<kind>/.
func tokenKindAPIs(a *AppConfig) {
	up := a.APIs[0].Upstream
	for _, kind := range []string{"user", "client", "user_or_client", "user_or_none", "none", "anonymous"} {
		api := APIConfig{Path: "/k/" + kind + "/", Upstream: up, Token: kind}
		if usesClientToken(kind) {
			api.ClientScopes, api.ClientResource = []string{"api:read"}, "https://api.example/"
		}
		a.APIs = append(a.APIs, api)
	}
}

// TestAPITokenKinds sends a signed-in and an anonymous browser's API
// calls through the gateway to an API of each token kind.
func TestAPITokenKinds(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: tokenKindAPIs})
	user := h.login("/")
	userToken := "Bearer " + h.sessionOf(user).AccessToken
	anon := h.browser()
	tests := []struct {
		kind   string
		signed bool
		want   string // Authorization at the API; "client": the client token; "401": refused
	}{
		{"user", true, userToken},
		{"user", false, "401"},
		{"client", true, "client"},
		{"client", false, "client"},
		{"user_or_client", true, userToken},
		{"user_or_client", false, "client"},
		{"user_or_none", true, userToken},
		{"user_or_none", false, ""},
		{"none", true, ""},
		{"none", false, "401"}, // as before token kinds: a session is required
		{"anonymous", true, ""},
		{"anonymous", false, ""},
	}
	for _, tt := range tests {
		c, who := anon, "anonymous"
		if tt.signed {
			c, who = user, "signed in"
		}
		t.Run(tt.kind+"/"+who, func(t *testing.T) {
			resp := h.get(c, "/k/"+tt.kind+"/x", "X-CSRF", "1", "Authorization", "Bearer from-the-page")
			if tt.want == "401" {
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status = %d, want 401", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200: %s", resp.StatusCode, body(t, resp))
			}
			got := h.lastAPIRequest().Header.Get("Authorization")
			if tt.want != "client" {
				if got != tt.want {
					t.Errorf("API got Authorization %q, want %q", got, tt.want)
				}
				return
			}
			info, ok := h.op.ClientTokenInfo(strings.TrimPrefix(got, "Bearer "))
			if !ok || info.Scope != "api:read" || info.Resource != "https://api.example/" {
				t.Errorf("API got Authorization %q (issued %v: %+v), want the client token for api:read at https://api.example/", got, ok, info)
			}
		})
	}
	if n := h.op.ClientCredentialsCount(); n != 1 {
		t.Errorf("client_credentials grants = %d, want 1 (client and user_or_client ask for the same grant)", n)
	}
}

// Every API call needs X-CSRF: 1, also an anonymous one with a client
// token: a cross-site page could otherwise spend the gateway's token.
func TestAPITokenKindsRequireCSRF(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: tokenKindAPIs})
	for _, kind := range []string{"client", "user_or_client", "user_or_none", "anonymous"} {
		resp := h.get(h.browser(), "/k/"+kind+"/x")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without X-CSRF: status %d, want 401", kind, resp.StatusCode)
		}
	}
	if n := h.op.ClientCredentialsCount(); n != 0 {
		t.Errorf("client_credentials grants = %d, want 0", n)
	}
}

func TestAPITokenConfig(t *testing.T) {
	base := func() AppConfig {
		a := AppConfig{Name: "demo", Issuer: "https://idp.example", ClientID: "demo", ClientSecret: "s3cret",
			Frontend: "http://127.0.0.1:3000", APIs: []APIConfig{{Path: "/api/", Upstream: "http://127.0.0.1:4000"}}}
		return a
	}
	tests := []struct {
		name    string
		edit    func(*AppConfig)
		wantErr string // "" valid
	}{
		{"default user", func(*AppConfig) {}, ""},
		{"every kind", func(a *AppConfig) {
			for _, k := range []string{"user", "client", "user_or_client", "user_or_none", "none", "anonymous"} {
				a.APIs = append(a.APIs, APIConfig{Path: "/" + k + "/", Upstream: "http://127.0.0.1:4000", Token: k})
			}
		}, ""},
		{"client with scopes, audience, resource", func(a *AppConfig) {
			a.APIs[0] = APIConfig{Path: "/api/", Upstream: "http://127.0.0.1:4000", Token: "client",
				ClientScopes: []string{"api:read"}, ClientAudience: "https://api", ClientResource: "urn:example:api"}
		}, ""},
		{"unknown kind", func(a *AppConfig) { a.APIs[0].Token = "bearer" }, `apis[0].token: must be "user", "client", "user_or_client", "user_or_none", "none" or "anonymous", not "bearer"`},
		{"client keys with user", func(a *AppConfig) { a.APIs[0].ClientScopes = []string{"x"} }, `apis[0].client_scopes, client_audience, client_resource: only with token = "client" or "user_or_client"`},
		{"public client", func(a *AppConfig) { a.ClientSecret = ""; a.APIs[0].Token = "client" }, `apis[0].token: "client" needs a confidential client`},
		{"resource with fragment", func(a *AppConfig) { a.APIs[0].Token = "client"; a.APIs[0].ClientResource = "https://api/#x" }, "apis[0].client_resource: must be an absolute URI"},
		{"relative resource", func(a *AppConfig) { a.APIs[0].Token = "user_or_client"; a.APIs[0].ClientResource = "/api" }, "apis[0].client_resource: must be an absolute URI"},
		{"bad scope", func(a *AppConfig) { a.APIs[0].Token = "client"; a.APIs[0].ClientScopes = []string{"a b"} }, `apis[0].client_scopes[0]: "a b" is not a scope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			tt.edit(&a)
			a.Defaults()
			err := a.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
