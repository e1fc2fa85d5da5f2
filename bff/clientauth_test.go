package bff

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// TestClientAuthMethods: the code exchange, the refresh grant and the
// revocation at logout authenticate the client with the method that was
// configured or that discovery chose, each with exactly one request.
// Fails before: a client_secret_post client needed two token requests
// for the login (x/oauth2 tried Basic first) and its revocation was
// refused with 401 (always Basic).
func TestClientAuthMethods(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	withKey := func(method string) func(*AppConfig) {
		return func(a *AppConfig) {
			a.TokenEndpointAuthMethod = method
			a.ClientAssertionKeyFile = "assertion.pem" // loaded by cmd
			a.ClientAssertionKey = key
		}
	}
	tests := []struct {
		name       string
		op         testop.Config
		registered string // the only method the OP accepts; "" basic or post
		pubKey     crypto.PublicKey
		mutate     func(*AppConfig)
		token      string // the method of the exchange and the refresh
		revoke     string
		public     bool // the client has no secret (none: client_id in the form)
	}{
		{name: "basic by discovery", registered: testop.SecretBasic,
			token: testop.SecretBasic, revoke: testop.SecretBasic},
		{name: "post by discovery", registered: testop.SecretPost,
			op:    testop.Config{TokenAuthMethods: []string{testop.SecretPost}},
			token: testop.SecretPost, revoke: testop.SecretPost},
		{name: "post configured", registered: testop.SecretPost,
			mutate: func(a *AppConfig) { a.TokenEndpointAuthMethod = "client_secret_post" },
			token:  testop.SecretPost, revoke: testop.SecretPost},
		{name: "private_key_jwt configured", registered: testop.PrivateKeyJWT, pubKey: key.Public(),
			mutate: withKey("private_key_jwt"),
			token:  testop.PrivateKeyJWT, revoke: testop.PrivateKeyJWT},
		{name: "private_key_jwt by discovery", registered: testop.PrivateKeyJWT, pubKey: key.Public(),
			op:     testop.Config{TokenAuthMethods: []string{testop.SecretBasic, testop.PrivateKeyJWT}},
			mutate: withKey(""),
			token:  testop.PrivateKeyJWT, revoke: testop.PrivateKeyJWT},
		{name: "revocation methods by discovery",
			op:    testop.Config{RevocationAuthMethods: []string{testop.SecretPost}},
			token: testop.SecretBasic, revoke: testop.SecretPost},
		{name: "public client", registered: testop.SecretPost, public: true,
			mutate: func(a *AppConfig) { a.ClientSecret = "" },
			token:  testop.SecretPost, revoke: testop.SecretPost},
		{name: "configured wins over discovery", registered: testop.SecretPost,
			op:     testop.Config{RevocationAuthMethods: []string{testop.SecretBasic}},
			mutate: func(a *AppConfig) { a.TokenEndpointAuthMethod = "client_secret_post" },
			token:  testop.SecretPost, revoke: testop.SecretPost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{op: tt.op, mutate: tt.mutate})
			if tt.public {
				h.op.AddClient(h.op.ClientID(), "", h.srv.URL+"/bff/callback")
			}
			h.op.SetClientAuth(h.op.ClientID(), tt.registered, tt.pubKey)
			c := h.login("/")
			if got := h.op.TokenCalls(); got != 1 {
				t.Errorf("token endpoint calls for one login = %d, want 1 (failures %q)", got, h.op.ClientAuthFailures())
			}
			s := h.sessionOf(c)
			if _, _, err := h.mgr.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
				session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: time.Now().Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
				t.Fatalf("API call with a refresh: status = %d, want 200", resp.StatusCode)
			}
			if got := h.op.RefreshCount(); got != 1 {
				t.Errorf("refreshes = %d, want 1", got)
			}
			rt := h.sessionOf(c).RefreshToken
			if resp := h.get(c, h.logoutURL(c)); resp.StatusCode != http.StatusFound {
				t.Fatalf("logout: status = %d, want 302", resp.StatusCode)
			}
			waitFor(t, "a revocation attempt", func() bool { return len(h.op.ClientAuthMethods())+len(h.op.ClientAuthFailures()) >= 3 })
			want := []string{"token " + tt.token, "token " + tt.token, "revoke " + tt.revoke}
			if got := h.op.ClientAuthMethods(); !slices.Equal(got, want) {
				t.Errorf("client authentications = %q, want %q", got, want)
			}
			if f := h.op.ClientAuthFailures(); len(f) > 0 {
				t.Errorf("client authentication failures: %s", strings.Join(f, "; "))
			}
			if !slices.Contains(h.op.Revoked(), rt) {
				t.Errorf("the refresh token was not revoked")
			}
		})
	}
}
