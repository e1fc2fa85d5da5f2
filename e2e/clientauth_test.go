package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clientAuthClients registers, besides the demo API's introspecting client
// demo, a client_secret_post client for the gateway's app at "/" and a
// private_key_jwt client (its public key inline, %s) for the app at
// "/app2/".
const clientAuthClients = `[
  {
    "client_id": "demo",
    "client_secret": "${DEMO_CLIENT_SECRET}",
    "redirect_uris": ["${GATEWAY_URL}/unused"],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic"
  },
  {
    "client_id": "post-client",
    "client_secret": "${DEMO_CLIENT_SECRET}",
    "client_name": "bffgate client_secret_post",
    "redirect_uris": ["${GATEWAY_URL}/bff/callback"],
    "post_logout_redirect_uris": ["${GATEWAY_URL}/bff/signed-out"],
    "backchannel_logout_uri": "${GATEWAY_URL}/bff/backchannel-logout",
    "backchannel_logout_session_required": true,
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_post"
  },
  {
    "client_id": "jwt-client",
    "client_name": "bffgate private_key_jwt",
    "redirect_uris": ["${GATEWAY_URL}/app2/bff/callback"],
    "post_logout_redirect_uris": ["${GATEWAY_URL}/app2/bff/signed-out"],
    "backchannel_logout_uri": "${GATEWAY_URL}/app2/bff/backchannel-logout",
    "backchannel_logout_session_required": true,
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "private_key_jwt",
    "jwks": {"keys": [%s]}
  }
]`

// TestClientAuthMethodsOIDCProvider (issue 13 item 1): oidc-provider 9 with
// a client_secret_post client and a private_key_jwt client. For each, the
// code exchange takes one token request (no failed first try), a refresh
// grant succeeds (access tokens live 2 s), and the logout revokes the
// refresh token: the revocation endpoint answers 200 and oidc-provider
// destroys the client's refresh token. The post client's method is
// configured; the key client's is chosen from discovery because a key
// file is set. Fails before: the post client's revocation got 401, and
// its first code exchange 401 before a form retry.
func TestClientAuthMethodsOIDCProvider(t *testing.T) {
	keyFile, pub := clientAssertionKey(t)
	post := appSpec{name: "demo", prefix: "/", clientID: "post-client",
		settings: `token_endpoint_auth_method = "client_secret_post"`}
	jwt := appSpec{name: "demo2", prefix: "/app2/", clientID: "jwt-client",
		settings: fmt.Sprintf("client_assertion_key_file = %q", keyFile)}
	s := startStackWith(t, stackOptions{
		clientsJSON: fmt.Sprintf(clientAuthClients, pub),
		idpEnv:      []string{"ACCESS_TOKEN_TTL=2"},
	}, post, jwt)
	tb := newBrowser(t).newTab()
	for _, a := range []appSpec{post, jwt} {
		t.Run(a.clientID, func(t *testing.T) { checkClientAuth(t, s, tb, a) })
	}
	if n := len(s.idpEvents("e2e.http", map[string]string{"method": "POST", "status": "401"})); n != 0 {
		t.Errorf("the IdP answered 401 to %d POSTs, want none", n)
	}
}

// checkClientAuth logs in to app a, waits for a refresh grant, logs out
// everywhere and checks the revocation at the IdP.
func checkClientAuth(t *testing.T, s *stack, tb *tab, a appSpec) {
	tb.loginToApp(s.gwURL+a.prefix, "alice", "wonderland", false)
	client := map[string]string{"client_id": a.clientID}
	if n := len(s.idpEvents("grant.success", map[string]string{"client_id": a.clientID, "grant_type": "authorization_code"})); n != 1 {
		t.Errorf("code exchanges = %d, want 1", n)
	}
	if got := s.idpEvents("grant.error", client); len(got) != 0 {
		t.Errorf("grant errors: %v", got)
	}
	// The access token lives 2 s: an API call soon needs a refresh.
	err := eventually(15*time.Second, func() error {
		if r := tb.fetch(a.prefix + "api/hello"); r.Status != 200 {
			return fmt.Errorf("%sapi/hello = %d %s", a.prefix, r.Status, r.Body)
		}
		if len(s.idpEvents("grant.success", map[string]string{"client_id": a.clientID, "grant_type": "refresh_token"})) == 0 {
			return fmt.Errorf("no refresh grant yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}

	tb.click("#logout")
	idp, _ := url.Parse(s.idpURL)
	tb.waitURL("at the IdP's end_session page", func(u *url.URL) bool {
		return u.Host == idp.Host && strings.HasPrefix(u.Path, "/session/end")
	})
	tb.click("#logout-yes")
	gw, _ := url.Parse(s.gwURL)
	tb.waitURL("back on the app", func(u *url.URL) bool {
		return u.Host == gw.Host && strings.HasPrefix(u.Path, a.prefix) && !strings.Contains(u.Path, "/bff/")
	})
	err = eventually(5*time.Second, func() error {
		if len(s.idpEvents("e2e.refresh_token.destroyed", map[string]string{"client_id": a.clientID, "sub": "alice"})) == 0 {
			return fmt.Errorf("the IdP destroyed no refresh token of %s", a.clientID)
		}
		if errs := s.idpEvents("revocation.error", nil); len(errs) > 0 {
			return fmt.Errorf("revocation errors: %v", errs)
		}
		return nil
	})
	if err != nil {
		t.Errorf("refresh token not revoked at logout: %v", err)
	}
	if errs := s.idpEvents("revocation.error", nil); len(errs) > 0 {
		t.Errorf("revocation errors at the IdP: %v", errs)
	}
}

// clientAssertionKey writes a new P-256 private_key_jwt signing key to a
// PEM file for the gateway's client_assertion_key_file, and returns the
// file and the public JWK to register at the IdP, as an operator would:
// with the kid the gateway puts in its assertions by default, the JWK
// thumbprint.
func clientAssertionKey(t *testing.T) (keyFile string, publicJWK []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "client-assertion.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key.Public(), Use: "sig", Algorithm: "ES256"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	publicJWK, err = json.Marshal(jwk)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, publicJWK
}
