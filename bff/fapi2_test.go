package bff

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// fapi2Config is a valid profile = "fapi2" app before Defaults.
func fapi2Config() AppConfig {
	return AppConfig{
		Name: "bank", Issuer: "https://idp.example", ClientID: "bank", Frontend: "http://spa.example",
		Profile:          profileFAPI2,
		ClientAuthConfig: ClientAuthConfig{ClientAssertionKeyFile: "assertion.pem"},
	}
}

// TestFAPI2Defaults: the profile turns on PAR (required), DPoP,
// private_key_jwt and PS256/ES256 ID tokens; such a config is valid.
func TestFAPI2Defaults(t *testing.T) {
	c := fapi2Config()
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.PAR != parRequired || !c.DPoP || c.TokenEndpointAuthMethod != "private_key_jwt" || !slices.Equal(c.IDTokenSigningAlgs, []string{"PS256", "ES256"}) {
		t.Errorf("par %q, dpop %v, method %q, algs %v: want required, true, private_key_jwt, [PS256 ES256]",
			c.PAR, c.DPoP, c.TokenEndpointAuthMethod, c.IDTokenSigningAlgs)
	}
	plain := fapi2Config()
	plain.Profile = ""
	plain.Defaults()
	if plain.PAR != parAuto || plain.DPoP || !slices.Equal(plain.IDTokenSigningAlgs, []string{"RS256"}) {
		t.Errorf("without the profile: par %q, dpop %v, algs %v: want the usual defaults", plain.PAR, plain.DPoP, plain.IDTokenSigningAlgs)
	}
}

// TestFAPI2ConfigErrors: every key that contradicts the profile is a
// configuration error naming the key.
func TestFAPI2ConfigErrors(t *testing.T) {
	no := false
	tests := []struct {
		name   string
		mutate func(*AppConfig)
		want   string
	}{
		{"unknown profile", func(c *AppConfig) { c.Profile = "fapi1" }, "profile: must be"},
		{"par off", func(c *AppConfig) { c.PAR = parOff }, "par: is \"off\""},
		{"client_secret_basic", func(c *AppConfig) { c.TokenEndpointAuthMethod = "client_secret_basic"; c.ClientSecret = "s" }, "token_endpoint_auth_method: is \"client_secret_basic\""},
		{"no assertion key", func(c *AppConfig) { c.ClientAssertionKeyFile = "" }, "client_assertion_key_file: profile"},
		{"RS256 ID tokens", func(c *AppConfig) { c.IDTokenSigningAlgs = []string{"ES256", "RS256"} }, "id_token_signing_algs[1]: RS256 is not allowed"},
		{"RS256 assertions", func(c *AppConfig) { c.ClientAssertionAlg = "RS256" }, "client_assertion_alg: RS256"},
		{"bearer API", func(c *AppConfig) { c.APIs = []APIConfig{{Path: "/api/", Upstream: "http://api.example", DPoP: &no}} }, "apis[0].dpop: profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fapi2Config()
			tt.mutate(&c)
			c.Defaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// fapi2Harness is a gateway whose app has profile = "fapi2" in front of
// an OP that does what the profile asks (PAR, DPoP, iss, ES256 ID
// tokens, private_key_jwt, 5-minute access tokens); op changes it.
func fapi2Harness(t *testing.T, op func(*testop.Config)) *harness {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testop.Config{
		PAR: true, RequirePAR: true, DPoP: true, AuthorizationResponseISS: true, IDTokenAlg: "ES256",
		AccessTokenTTL: 5 * time.Minute, TokenAuthMethods: []string{testop.PrivateKeyJWT},
	}
	if op != nil {
		op(&cfg)
	}
	h := newHarness(t, harnessOpts{op: cfg, mutate: func(a *AppConfig) {
		a.Profile = profileFAPI2
		a.ClientSecret = ""
		a.ClientAssertionKeyFile = "assertion.pem" // loaded by cmd
		a.ClientAssertionKey = key
	}})
	h.op.SetClientAuth(h.op.ClientID(), testop.PrivateKeyJWT, key.Public())
	return h
}

// TestFAPI2Login: under the profile a login pushes its authorization
// request, authenticates with private_key_jwt, and ends with DPoP-bound
// tokens; the API gets them with a proof.
func TestFAPI2Login(t *testing.T) {
	h := fapi2Harness(t, nil)
	c := h.login("/")
	s := h.sessionOf(c)
	if s.TokenType != "DPoP" || len(s.DPoPKey) == 0 {
		t.Fatalf("session token_type %q with %d key bytes: want DPoP-bound", s.TokenType, len(s.DPoPKey))
	}
	if n := h.op.PARCalls(); n != 1 {
		t.Errorf("PAR calls = %d, want 1", n)
	}
	if got := h.op.ClientAuthMethods(); !slices.Contains(got, "token "+testop.PrivateKeyJWT) {
		t.Errorf("client authentications = %v, want private_key_jwt at the token endpoint", got)
	}
	resp := h.get(c, "/api/x", "X-CSRF", "1")
	if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, `"auth":"DPoP `) {
		t.Fatalf("API call: %d %s, want 200 with a DPoP token", resp.StatusCode, b)
	}
}

// TestFAPI2LoginRefused: what the profile refuses at the callback, each
// counted with its reason and without a session: a Bearer (unbound)
// token answer (only warned about without the profile), a response
// without iss from an IdP that does not advertise it, an RS256 ID
// token, a long-lived access token, and an ID token issued in the
// future beyond the clock skew.
func TestFAPI2LoginRefused(t *testing.T) {
	tests := []struct {
		name   string
		op     func(*testop.Config)
		setup  func(*harness)
		reason string
	}{
		{name: "bearer token", op: func(c *testop.Config) { c.DPoP = false }, reason: "fapi2"},
		{name: "iss missing, not advertised", op: func(c *testop.Config) { c.AuthorizationResponseISS = false }, reason: "iss_missing"},
		{name: "RS256 ID token", op: func(c *testop.Config) { c.IDTokenAlg = "RS256" }, reason: "id_token"},
		{name: "access token of an hour", op: func(c *testop.Config) { c.AccessTokenTTL = time.Hour }, reason: "fapi2"},
		{name: "iat 30s ahead", setup: func(h *harness) {
			h.op.SetUser("alice", map[string]any{"iat": time.Now().Add(30 * time.Second).Unix()})
		}, reason: "fapi2"},
		{name: "nbf 30s ahead", setup: func(h *harness) {
			h.op.SetUser("alice", map[string]any{"nbf": time.Now().Add(30 * time.Second).Unix()})
		}, reason: "fapi2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fapi2Harness(t, tt.op)
			if tt.setup != nil {
				tt.setup(h)
			}
			c := h.browser()
			resp, _ := h.follow(c, "/bff/login")
			if b := body(t, resp); resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %s", resp.StatusCode, b)
			}
			if h.signedIn(c) {
				t.Fatal("signed in despite the profile")
			}
			if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": "failed", "reason": tt.reason}); got != 1 {
				t.Errorf(`bffgate_logins_total{result="failed",reason=%q} = %v, want 1`, tt.reason, got)
			}
		})
	}
}

// TestFAPI2Bounds: the profile's limits at their edges.
func TestFAPI2Bounds(t *testing.T) {
	if fapi2FutureSkew != 10*time.Second || fapi2MaxAccessTokenLifetime != 10*time.Minute {
		t.Fatalf("skew %s, lifetime %s: the documented limits are 10s and 10m", fapi2FutureSkew, fapi2MaxAccessTokenLifetime)
	}
}

// TestFAPI2Online: -check-config -online says what the IdP lacks for the
// profile, and an IdP with all of it passes.
func TestFAPI2Online(t *testing.T) {
	app := func(op *testop.OP) AppConfig {
		a := fapi2Config()
		a.Issuer = op.URL
		a.Defaults()
		return a
	}
	full := testop.New(t, testop.Config{PAR: true, RequirePAR: true, DPoP: true, AuthorizationResponseISS: true,
		IDTokenAlg: "ES256", TokenAuthMethods: []string{testop.PrivateKeyJWT}})
	problems, warnings, _ := CheckOnlineReport(context.Background(), http.DefaultClient, app(full))
	if len(problems) > 0 {
		t.Fatalf("problems with an IdP that has the whole profile: %v", problems)
	}
	if w := fmt.Sprint(warnings); strings.Contains(w, "profile") {
		t.Errorf("warnings: %s", w)
	}

	bare := testop.New(t, testop.Config{})
	problems, warnings, _ = CheckOnlineReport(context.Background(), http.DefaultClient, app(bare))
	all := fmt.Sprint(problems)
	for _, want := range []string{
		"no pushed_authorization_request_endpoint",
		"authorization_response_iss_parameter_supported",
		"dpop_signing_alg_values_supported does not list ES256",
		"token_endpoint_auth_methods_supported does not list it",
		"requires PS256 or ES256 ID tokens, but the IdP's id_token_signing_alg_values_supported has RS256",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems %s\nwant one with %q", all, want)
		}
	}
	if !strings.Contains(fmt.Sprint(warnings), "require_pushed_authorization_requests") {
		t.Errorf("warnings %v, want the require_pushed_authorization_requests advice", warnings)
	}
}

// TestFAPI2NonceRetryFreshAssertion: when the IdP demands a DPoP nonce
// at the code exchange, the retry carries a new private_key_jwt
// assertion (its jti is single use). Fails before: the retry resent the
// same assertion and the IdP refused it as replayed (invalid_client).
func TestFAPI2NonceRetryFreshAssertion(t *testing.T) {
	h := fapi2Harness(t, nil)
	h.op.SetDPoPNonce("n1")
	c := h.browser()
	resp, _ := h.follow(c, "/bff/login")
	if b := body(t, resp); !h.signedIn(c) {
		t.Fatalf("not signed in: %d %s; client auth failures %v", resp.StatusCode, b, h.op.ClientAuthFailures())
	}
}

// TestFAPI2RefreshNonceFreshAssertion: a refresh challenged for a new
// DPoP nonce retries with a new private_key_jwt assertion. Fails
// before: the retry reused the assertion (jti replayed, the refresh
// failed).
func TestFAPI2RefreshNonceFreshAssertion(t *testing.T) {
	h := fapi2Harness(t, nil)
	h.op.SetDPoPNonce("n1")
	c := h.login("/")
	h.op.SetDPoPNonce("n2") // the refresh is challenged again
	s := h.sessionOf(c)
	s.TokenExpiry = time.Now().Add(-time.Second) // due
	if err := h.store.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if code, b := h.apiGet(c, "/api/x"); code != http.StatusOK {
		t.Fatalf("API call = %d %s; client auth failures %v", code, b, h.op.ClientAuthFailures())
	}
	if h.op.RefreshCount() != 1 {
		t.Fatalf("refreshes = %d, want 1", h.op.RefreshCount())
	}
}

// TestFAPI2RefreshHeldToProfile: a refresh grant whose access token breaks
// the profile (here one that lives an hour) ends the session, as a
// refused grant does, and nothing of it reaches the API. Fails before:
// only the login was checked, and the hour-long token was used.
func TestFAPI2RefreshHeldToProfile(t *testing.T) {
	h := fapi2Harness(t, nil)
	c := h.login("/")
	h.op.SetAccessTokenTTL(time.Hour)
	s := h.sessionOf(c)
	s.TokenExpiry = time.Now().Add(-time.Second) // due
	if err := h.store.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if code, b := h.apiGet(c, "/api/x"); code != http.StatusUnauthorized {
		t.Fatalf("API call after a refresh to an hour-long token = %d %s, want 401", code, b)
	}
	if h.op.RefreshCount() != 1 {
		t.Fatalf("refreshes = %d, want 1", h.op.RefreshCount())
	}
	if _, err := h.store.Get(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session after the refused refresh: %v, want it ended", err)
	}
}
