package clientauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/internal/testop"
)

func TestChoose(t *testing.T) {
	tests := []struct {
		name              string
		configured        clientauth.Method
		supported         []string
		hasSecret, hasKey bool
		want              clientauth.Method
	}{
		{"configured wins", clientauth.SecretPost, []string{"client_secret_basic"}, true, false, clientauth.SecretPost},
		{"nothing listed means basic", "", nil, true, false, clientauth.SecretBasic},
		{"basic preferred", "", []string{"client_secret_post", "client_secret_basic"}, true, false, clientauth.SecretBasic},
		{"post when basic is not listed", "", []string{"client_secret_post", "private_key_jwt"}, true, false, clientauth.SecretPost},
		{"a key prefers private_key_jwt", "", []string{"client_secret_basic", "private_key_jwt"}, true, true, clientauth.PrivateKeyJWT},
		{"a key but not listed", "", []string{"client_secret_basic"}, true, true, clientauth.SecretBasic},
		{"key only, nothing listed", "", nil, false, true, clientauth.PrivateKeyJWT},
		{"no match: the first the client can", "", []string{"tls_client_auth"}, true, false, clientauth.SecretBasic},
		{"neither secret nor key: a public client", "", []string{"client_secret_basic"}, false, false, clientauth.None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientauth.Choose(tt.configured, tt.supported, tt.hasSecret, tt.hasKey); got != tt.want {
				t.Errorf("Choose = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	for _, ok := range []string{"", "client_secret_basic", "client_secret_post", "private_key_jwt", "none"} {
		if _, err := clientauth.ParseMethod(ok); err != nil {
			t.Errorf("ParseMethod(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"None", "client_secret_jwt", "Client_Secret_Basic", "tls_client_auth"} {
		if _, err := clientauth.ParseMethod(bad); err == nil {
			t.Errorf("ParseMethod(%q) = nil, want an error", bad)
		}
	}
}

func TestNewKey(t *testing.T) {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     string
		want    jose.SignatureAlgorithm
		wantErr string
	}{
		{name: "RSA default", key: rsa2048, want: jose.RS256},
		{name: "RSA PS256", key: rsa2048, alg: "PS256", want: jose.PS256},
		{name: "P-256", key: p256, want: jose.ES256},
		{name: "P-384", key: p384, want: jose.ES384},
		{name: "Ed25519", key: ed, want: jose.EdDSA},
		{name: "small RSA", key: rsa1024, wantErr: "at least 2048"},
		{name: "alg of another key type", key: p256, alg: "RS256", wantErr: "does not fit"},
		{name: "HMAC alg", key: rsa2048, alg: "HS256", wantErr: "does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := clientauth.NewKey(tt.key, "", tt.alg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKey error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tp, _ := (&jose.JSONWebKey{Key: tt.key.Public()}).Thumbprint(crypto.SHA256)
			if k.Alg != tt.want || k.KeyID != base64.RawURLEncoding.EncodeToString(tp) {
				t.Errorf("alg, kid = %s, %s; want %s and the JWK thumbprint", k.Alg, k.KeyID, tt.want)
			}
			pub, err := json.Marshal(k.Public)
			if err != nil || strings.Contains(string(pub), `"d":`) || !strings.Contains(string(pub), `"kid":"`+k.KeyID+`"`) {
				t.Errorf("public JWK = %s, %v; want the public key with its kid", pub, err)
			}
		})
	}
}

// TestAssertion: RFC 7523 §3 claims, the issuer alone as a string aud,
// a 60 s lifetime, a fresh jti each time, the kid header.
func TestAssertion(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := clientauth.NewKey(key, "my-kid", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &clientauth.Client{ID: "client", Method: clientauth.PrivateKeyJWT, Key: k, Audience: "https://op.example"}
	seen := map[string]bool{}
	for range 3 {
		p, err := c.Params()
		if err != nil {
			t.Fatal(err)
		}
		if p.Get("client_assertion_type") != clientauth.AssertionType {
			t.Errorf("client_assertion_type = %q", p.Get("client_assertion_type"))
		}
		a := p.Get("client_assertion")
		tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		if h := tok.Headers[0]; h.KeyID != "my-kid" || h.Algorithm != "ES256" {
			t.Errorf("header kid, alg = %s, %s", h.KeyID, h.Algorithm)
		}
		var claims jwt.Claims
		if err := tok.Claims(key.Public(), &claims); err != nil {
			t.Fatal(err)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(a, ".")[1])
		if !strings.Contains(string(payload), `"aud":"https://op.example"`) {
			t.Errorf("payload %s: want aud the issuer as a single string", payload)
		}
		if claims.Issuer != "client" || claims.Subject != "client" || claims.ID == "" || seen[claims.ID] {
			t.Errorf("iss, sub, jti = %q, %q, %q; want client, client and a fresh jti", claims.Issuer, claims.Subject, claims.ID)
		}
		seen[claims.ID] = true
		if life := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); life != clientauth.AssertionLifetime {
			t.Errorf("exp - iat = %s, want %s", life, clientauth.AssertionLifetime)
		}
	}
}

// TestAgainstTestOP: every method at the test OP's token endpoint (code
// exchange and refresh) and revocation endpoint, one request each.
func TestAgainstTestOP(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, m := range clientauth.Methods {
		t.Run(string(m), func(t *testing.T) {
			op := testop.New(t, testop.Config{RedirectURL: "https://rp.example/cb"})
			c := &clientauth.Client{ID: op.ClientID(), Secret: op.ClientSecret(), Method: m, Audience: op.URL}
			var pub crypto.PublicKey
			if m == clientauth.PrivateKeyJWT {
				k, err := clientauth.NewKey(rsaKey, "", "PS256")
				if err != nil {
					t.Fatal(err)
				}
				c.Key, pub = k, rsaKey.Public()
			}
			op.SetClientAuth(op.ClientID(), string(m), pub)
			ctx := context.Background()
			tok := exchange(t, op, c)
			tok2, err := c.Refresh(ctx, op.URL+"/token", tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if tok2.AccessToken == "" || tok2.Extra("id_token") == nil || op.RefreshCount() != 1 {
				t.Errorf("refresh gave %+v, refreshes %d", tok2, op.RefreshCount())
			}
			req, err := c.NewRequest(ctx, op.URL+"/revoke", url.Values{"token": {tok2.RefreshToken}})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("revocation status = %d, want 200", resp.StatusCode)
			}
			want := []string{"token " + string(m), "token " + string(m), "revoke " + string(m)}
			if got := op.ClientAuthMethods(); !slices.Equal(got, want) {
				t.Errorf("authentications = %q, want %q (failures %q)", got, want, op.ClientAuthFailures())
			}
			if op.TokenCalls() != 2 {
				t.Errorf("token calls = %d, want 2", op.TokenCalls())
			}
		})
	}
}

// TestClientCredentialsAgainstTestOP: the client-credentials grant with
// each method, its scopes and extra parameters, and no secret or
// assertion in the recorded form beyond what the method sends.
func TestClientCredentialsAgainstTestOP(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, m := range clientauth.Methods {
		t.Run(string(m), func(t *testing.T) {
			op := testop.New(t, testop.Config{})
			c := &clientauth.Client{ID: op.ClientID(), Secret: op.ClientSecret(), Method: m, Audience: op.URL}
			var pub crypto.PublicKey
			if m == clientauth.PrivateKeyJWT {
				k, err := clientauth.NewKey(rsaKey, "", "")
				if err != nil {
					t.Fatal(err)
				}
				c.Key, pub = k, rsaKey.Public()
			}
			op.SetClientAuth(op.ClientID(), string(m), pub)
			tok, err := c.ClientCredentials(context.Background(), op.URL+"/token", []string{"api:read", "api:write"},
				url.Values{"resource": {"https://api.example/"}, "audience": {"api"}})
			if err != nil {
				t.Fatalf("client credentials: %v (failures %q)", err, op.ClientAuthFailures())
			}
			info, ok := op.ClientTokenInfo(tok.AccessToken)
			if !ok || info.Scope != "api:read api:write" || info.Resource != "https://api.example/" || info.Audience != "api" || tok.Expiry.IsZero() {
				t.Errorf("token %+v issued for %+v (%v)", tok, info, ok)
			}
			if got, want := op.ClientAuthMethods(), []string{"token " + string(m)}; !slices.Equal(got, want) {
				t.Errorf("authentications = %q, want %q", got, want)
			}
		})
	}
}

// exchange logs in at op and exchanges the code with c's method.
func exchange(t *testing.T, op *testop.OP, c *clientauth.Client) *oauth2.Token {
	t.Helper()
	conf := &oauth2.Config{ClientID: c.ID, ClientSecret: c.OAuth2Secret(), RedirectURL: "https://rp.example/cb",
		Scopes:   []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: op.URL + "/authorize", TokenURL: op.URL + "/token", AuthStyle: c.AuthStyle()}}
	verifier := oauth2.GenerateVerifier()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	opts, err := c.ExchangeOptions()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), append(opts, oauth2.VerifierOption(verifier))...)
	if err != nil {
		t.Fatalf("exchange: %v (failures %q)", err, op.ClientAuthFailures())
	}
	return tok
}

// TestTestOPRejectsBadAssertions: the test OP refuses what an IdP must
// refuse, so that the tests above prove something.
func TestTestOPRejectsBadAssertions(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	op := testop.New(t, testop.Config{})
	op.SetClientAuth(op.ClientID(), testop.PrivateKeyJWT, key.Public())
	sign := func(k *ecdsa.PrivateKey, claims map[string]any) string {
		return op.Sign(claims, testop.SignOpts{Alg: "ES256", Key: k})
	}
	now := time.Now()
	good := func() map[string]any {
		return map[string]any{"iss": op.ClientID(), "sub": op.ClientID(), "aud": op.URL,
			"jti": base64.RawURLEncoding.EncodeToString([]byte(now.String())), "exp": now.Add(time.Minute).Unix()}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		c["jti"] = k + "-jti"
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	replayed := sign(key, good())
	tests := []struct {
		name, assertion, want string
	}{
		{"first use", replayed, ""},
		{"replayed jti", replayed, "replayed"},
		{"other key", sign(other, with("jti", "x1")), "signature"},
		{"token endpoint as aud", sign(key, with("aud", op.URL+"/token")), "aud"},
		{"aud array with the issuer and more", sign(key, with("aud", []string{op.URL, "x"})), "aud"},
		{"expired", sign(key, with("exp", now.Add(-time.Minute).Unix())), "expired"},
		{"no exp", sign(key, with("exp", nil)), "without exp"},
		{"exp far ahead", sign(key, with("exp", now.Add(time.Hour).Unix())), "too far"},
		{"no jti", sign(key, with("jti", nil)), "without jti"},
		{"sub not iss", sign(key, with("sub", "someone")), "sub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(op.ClientAuthFailures())
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"},
				"client_assertion_type": {clientauth.AssertionType}, "client_assertion": {tt.assertion}}
			resp, err := http.PostForm(op.URL+"/token", form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			f := op.ClientAuthFailures()[before:]
			switch {
			case tt.want == "" && (len(f) > 0 || resp.StatusCode == http.StatusUnauthorized):
				t.Errorf("status %d, failures %q; want client authenticated", resp.StatusCode, f)
			case tt.want != "" && (resp.StatusCode != http.StatusUnauthorized || len(f) != 1 || !strings.Contains(f[0], tt.want)):
				t.Errorf("status %d, failures %q; want 401 for %q", resp.StatusCode, f, tt.want)
			}
		})
	}
}
