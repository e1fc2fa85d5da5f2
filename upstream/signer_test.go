package upstream

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/bffgate/bffgate/internal/oidcspec"
)

// Keys are slow to generate; each test key is made once.
var (
	testRSAKey = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	testECKey  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// newIssuer starts an httptest server that serves the signer's discovery
// document and JWKS, as the gateway does, and returns the signer built
// with cfg (Issuer set to the server's URL).
func newIssuer(t *testing.T, cfg SignerConfig) (*Signer, string) {
	t.Helper()
	var s *Signer
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.Discovery(srv.URL + "/.well-known/jwks.json"))
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.JWKS())
	})
	cfg.Issuer = srv.URL
	var err error
	s, err = NewSigner(cfg, nil)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s, srv.URL
}

// verifier is a downstream app validating the gateway's logout tokens with
// go-oidc, as its documentation shows.
func verifier(t *testing.T, issuer, alg string, cfg oidc.Config) *oidc.IDTokenVerifier {
	t.Helper()
	ctx := t.Context()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	cfg.ClientID = "demo"
	cfg.SupportedSigningAlgs = []string{alg}
	return provider.VerifierContext(ctx, &cfg)
}

func TestLogoutTokenVerifiesWithGoOIDC(t *testing.T) {
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     string
		typ     string
		wantTyp string
		sub     string
		sid     string
	}{
		{name: "RS256", key: testRSAKey(), alg: "RS256", wantTyp: "logout+jwt", sub: "alice", sid: "sid-1"},
		{name: "ES256", key: testECKey(), alg: "ES256", wantTyp: "logout+jwt", sub: "alice", sid: "sid-1"},
		{name: "typ JWT", key: testECKey(), alg: "ES256", typ: "JWT", wantTyp: "JWT", sub: "alice", sid: "sid-1"},
		{name: "sub only", key: testRSAKey(), alg: "RS256", wantTyp: "logout+jwt", sub: "alice"},
		{name: "sid only", key: testRSAKey(), alg: "RS256", wantTyp: "logout+jwt", sid: "sid-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, issuer := newIssuer(t, SignerConfig{KeyFile: writeKeyPEM(t, tt.key, "PRIVATE KEY")})
			tok, err := s.LogoutToken(LogoutClaims{Audience: "demo", Subject: tt.sub, SID: tt.sid, JTI: "jti-1", Typ: tt.typ})
			if err != nil {
				t.Fatalf("LogoutToken: %v", err)
			}

			lt, err := verifier(t, issuer, tt.alg, oidc.Config{}).VerifyLogout(t.Context(), tok)
			if err != nil {
				t.Fatalf("VerifyLogout: %v", err)
			}
			if lt.Issuer != issuer || lt.Subject != tt.sub || lt.SessionID != tt.sid || lt.TokenID != "jti-1" {
				t.Errorf("got iss=%q sub=%q sid=%q jti=%q, want %q %q %q jti-1",
					lt.Issuer, lt.Subject, lt.SessionID, lt.TokenID, issuer, tt.sub, tt.sid)
			}
			if got, want := lt.Expiry.Sub(lt.IssuedAt), 120*time.Second; got != want {
				t.Errorf("exp - iat = %v, want %v", got, want)
			}
			if got := lt.Audience; !slices.Equal(got, []string{"demo"}) {
				t.Errorf("aud = %q, want [demo]", got)
			}

			var raw map[string]json.RawMessage
			if err := lt.Claims(&raw); err != nil {
				t.Fatalf("Claims: %v", err)
			}
			if got, want := string(raw["aud"]), `"demo"`; got != want {
				t.Errorf("aud claim = %s, want the string %s", got, want)
			}
			if got, want := string(raw["events"]), `{"`+oidcspec.BackchannelLogoutEvent+`":{}}`; got != want {
				t.Errorf("events = %s, want %s", got, want)
			}
			for _, c := range []string{"nonce"} {
				if _, ok := raw[c]; ok {
					t.Errorf("token has claim %q, want none", c)
				}
			}
			if _, ok := raw["sid"]; ok != (tt.sid != "") {
				t.Errorf("sid present = %v, want %v", ok, tt.sid != "")
			}

			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tt.alg)})
			if err != nil {
				t.Fatalf("ParseSigned: %v", err)
			}
			h := jws.Signatures[0].Header
			if got := h.ExtraHeaders[jose.HeaderType]; got != tt.wantTyp {
				t.Errorf("typ = %v, want %q", got, tt.wantTyp)
			}
			if h.KeyID != s.KeyID() || h.Algorithm != tt.alg {
				t.Errorf("kid, alg = %q, %q, want %q, %q", h.KeyID, h.Algorithm, s.KeyID(), tt.alg)
			}
		})
	}
}

func TestLogoutTokenWrongAudienceRejected(t *testing.T) {
	s, issuer := newIssuer(t, SignerConfig{KeyFile: writeKeyPEM(t, testRSAKey(), "RSA PRIVATE KEY")})
	tok, err := s.LogoutToken(LogoutClaims{Audience: "other", Subject: "alice"})
	if err != nil {
		t.Fatalf("LogoutToken: %v", err)
	}
	if _, err := verifier(t, issuer, "RS256", oidc.Config{}).VerifyLogout(t.Context(), tok); err == nil {
		t.Error("VerifyLogout(aud=other) = nil error, want an audience error")
	}
}

func TestLogoutTokenInvalidClaims(t *testing.T) {
	s, _ := newIssuer(t, SignerConfig{KeyFile: writeKeyPEM(t, testECKey(), "EC PRIVATE KEY")})
	tests := []struct {
		name    string
		claims  LogoutClaims
		wantErr string
	}{
		{name: "no audience", claims: LogoutClaims{Subject: "alice"}, wantErr: "audience must be set"},
		{name: "no sub or sid", claims: LogoutClaims{Audience: "demo"}, wantErr: "subject or sid must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.LogoutToken(tt.claims)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LogoutToken() error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLogoutTokenRandomJTI(t *testing.T) {
	s, _ := newIssuer(t, SignerConfig{KeyFile: writeKeyPEM(t, testECKey(), "PRIVATE KEY")})
	jti := func() string {
		tok, err := s.LogoutToken(LogoutClaims{Audience: "demo", SID: "sid-1"})
		if err != nil {
			t.Fatalf("LogoutToken: %v", err)
		}
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("ParseSigned: %v", err)
		}
		var c struct {
			JTI string `json:"jti"`
		}
		if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
			t.Fatalf("payload: %v", err)
		}
		return c.JTI
	}
	a, b := jti(), jti()
	if len(a) != 22 || a == b { // 16 bytes, base64url without padding
		t.Errorf("generated jtis %q, %q: want two different 22-character values", a, b)
	}
}

type jwksDoc struct {
	Keys []struct {
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kty string `json:"kty"`
		D   string `json:"d"`
	} `json:"keys"`
}

func parseJWKS(t *testing.T, b []byte) jwksDoc {
	t.Helper()
	var d jwksDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	return d
}

func kids(d jwksDoc) []string {
	var ks []string
	for _, k := range d.Keys {
		ks = append(ks, k.Kid)
	}
	return ks
}

func thumbprint(t *testing.T, key crypto.Signer) string {
	t.Helper()
	sk, err := newSigningKey(key)
	if err != nil {
		t.Fatalf("newSigningKey: %v", err)
	}
	return sk.kid
}

func TestJWKS(t *testing.T) {
	s, _ := newIssuer(t, SignerConfig{
		KeyFile:          writeKeyPEM(t, testECKey(), "PRIVATE KEY"),
		PreviousKeyFiles: []string{writeKeyPEM(t, testRSAKey(), "RSA PRIVATE KEY")},
	})
	d := parseJWKS(t, s.JWKS())
	if got, want := kids(d), []string{thumbprint(t, testECKey()), thumbprint(t, testRSAKey())}; !slices.Equal(got, want) {
		t.Fatalf("JWKS kids = %q, want %q (current first)", got, want)
	}
	for i, want := range []struct{ kty, alg string }{{"EC", "ES256"}, {"RSA", "RS256"}} {
		k := d.Keys[i]
		if k.Use != "sig" || k.Alg != want.alg || k.Kty != want.kty || k.D != "" {
			t.Errorf("key %d = {use %q, alg %q, kty %q, private %v}, want {sig, %s, %s, false}",
				i, k.Use, k.Alg, k.Kty, k.D != "", want.alg, want.kty)
		}
	}
	if got, want := s.KeyID(), thumbprint(t, testECKey()); got != want {
		t.Errorf("KeyID() = %q, want the current key %q (previous keys never sign)", got, want)
	}
}

func TestDiscovery(t *testing.T) {
	s, issuer := newIssuer(t, SignerConfig{KeyFile: writeKeyPEM(t, testRSAKey(), "PRIVATE KEY")})
	var got map[string]any
	if err := json.Unmarshal(s.Discovery(issuer+"/jwks"), &got); err != nil {
		t.Fatalf("Discovery is not JSON: %v", err)
	}
	want := map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              issuer + "/jwks",
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
		"id_token_signing_alg_values_supported": []any{"RS256"},
		"response_types_supported":              []any{"code"},
		"subject_types_supported":               []any{"public"},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("Discovery = %s, want %s", gotJSON, wantJSON)
	}
}

func TestNewSignerGeneratesKey(t *testing.T) {
	var logs bytes.Buffer
	s, err := NewSigner(SignerConfig{Issuer: "https://gw.example.com"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	if got := parseJWKS(t, s.JWKS()); len(got.Keys) != 1 || got.Keys[0].Alg != "RS256" {
		t.Errorf("JWKS = %s, want one RS256 key", s.JWKS())
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "new key after every restart") {
		t.Errorf("log = %q, want a WARN about a new key after every restart", got)
	}
}

func TestSignerConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SignerConfig
		wantErr string // empty: valid
	}{
		{name: "valid", cfg: SignerConfig{Issuer: "https://gw.example.com"}},
		{name: "valid with path", cfg: SignerConfig{Issuer: "http://127.0.0.1:8080/gw"}},
		{name: "no issuer", cfg: SignerConfig{}, wantErr: "issuer: must be set"},
		{name: "relative issuer", cfg: SignerConfig{Issuer: "/gw"}, wantErr: "issuer: must be an absolute"},
		{name: "issuer with query", cfg: SignerConfig{Issuer: "https://gw.example.com/?a=b"}, wantErr: "issuer: must not contain"},
		{name: "empty previous key file", cfg: SignerConfig{Issuer: "https://gw", PreviousKeyFiles: []string{""}}, wantErr: "previous_key_files[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
