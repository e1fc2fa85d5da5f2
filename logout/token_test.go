package logout_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
	jose "github.com/go-jose/go-jose/v4"
)

const event = testop.BackchannelLogoutEvent

// rpKeys are the RP's decryption keys, made once.
var rpKeys = sync.OnceValue(func() struct {
	rsa, other *rsa.PrivateKey
	ec         *ecdsa.PrivateKey
} {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	o, _ := rsa.GenerateKey(rand.Reader, 2048)
	e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return struct {
		rsa, other *rsa.PrivateKey
		ec         *ecdsa.PrivateKey
	}{r, o, e}
})

func newVerifier(t testing.TB, op *testop.OP, mutate func(*logout.VerifierConfig)) *logout.Verifier {
	t.Helper()
	ks, err := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{JWKSURL: op.JWKSURL(), RefetchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cfg := logout.VerifierConfig{Issuer: op.URL, ClientID: op.ClientID(), ClientSecret: op.ClientSecret(), KeySet: ks}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := logout.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// reason is the Reason of a *ValidationError, "" for nil, or the error.
func reason(err error) string {
	var ve *logout.ValidationError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	if err != nil {
		return "not a ValidationError: " + err.Error()
	}
	return ""
}

type minter func(op *testop.OP) string

// lt mints a logout token: the default claims edited by mutate, signed so.
func lt(mutate func(map[string]any), opts testop.SignOpts) minter {
	return func(op *testop.OP) string { return op.Sign(op.LogoutToken(mutate), opts) }
}

func set(kv ...any) func(map[string]any) {
	return func(c map[string]any) {
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
	}
}

func del(names ...string) func(map[string]any) {
	return func(c map[string]any) {
		for _, n := range names {
			delete(c, n)
		}
	}
}

func ago(d time.Duration) int64 { return time.Now().Add(-d).Unix() }

func events(v any) func(map[string]any) { return set("events", v) }

// encrypted wraps a minted token in a JWE for key.
func encrypted(m minter, key any) minter {
	return func(op *testop.OP) string { return op.Encrypt(m(op), key) }
}

func withAlgs(algs ...string) func(*logout.VerifierConfig) {
	return func(c *logout.VerifierConfig) { c.SigningAlgs = algs }
}

func withDecryption(c *logout.VerifierConfig) {
	k := rpKeys()
	c.DecryptionKeys = []jose.JSONWebKey{{Key: k.rsa, KeyID: "rp-rsa"}, {Key: k.ec, KeyID: "rp-ec"}}
}

func TestVerify(t *testing.T) {
	op := testop.New(t, testop.Config{})
	pub, _ := x509.MarshalPKIXPublicKey(op.PublicKey("rs1"))
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	k := rpKeys()
	none := func(alg string) minter { return lt(nil, testop.SignOpts{Alg: alg}) }
	swapPayload := func(op *testop.OP) string { // a valid signature over other claims
		a := strings.Split(lt(nil, testop.SignOpts{})(op), ".")
		b := strings.Split(lt(set("sub", "mallory"), testop.SignOpts{})(op), ".")
		return a[0] + "." + b[1] + "." + a[2]
	}
	jsonSerialized := func(op *testop.OP) string {
		p := strings.Split(lt(nil, testop.SignOpts{})(op), ".")
		return `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`
	}
	idToken := func(op *testop.OP) string {
		return op.Sign(map[string]any{"iss": op.URL, "aud": op.ClientID(), "sub": "alice", "sid": "s1",
			"nonce": "n", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "jti": "j"}, testop.SignOpts{})
	}

	tests := []struct {
		name string
		tok  minter
		cfg  func(*logout.VerifierConfig)
		want string // Reason; "" means accepted
	}{
		// Accepted.
		{name: "suite valid token with ignored_claim", tok: lt(set("ignored_claim", "x"), testop.SignOpts{})},
		{name: "aud array", tok: lt(set("aud", []string{"client"}), testop.SignOpts{})},
		{name: "trusted extra audience", tok: lt(set("aud", []string{"client", "api"}), testop.SignOpts{}),
			cfg: func(c *logout.VerifierConfig) { c.TrustedAudiences = []string{"api"} }},
		{name: "azp is client_id", tok: lt(set("azp", "client"), testop.SignOpts{})},
		{name: "sub only", tok: lt(del("sid"), testop.SignOpts{})},
		{name: "sid only", tok: lt(del("sub"), testop.SignOpts{})},
		{name: "no kid", tok: lt(nil, testop.SignOpts{NoKID: true})},
		{name: "typ logout+jwt", tok: lt(nil, testop.SignOpts{Typ: "logout+jwt"})},
		{name: "typ application/logout+jwt", tok: lt(nil, testop.SignOpts{Typ: "application/logout+jwt"})},
		{name: "typ Logout+JWT", tok: lt(nil, testop.SignOpts{Typ: "Logout+JWT"})},
		{name: "typ JWT (old Keycloak)", tok: lt(nil, testop.SignOpts{Typ: "JWT"})},
		{name: "Keycloak revoke_offline_access in events",
			tok: lt(events(map[string]any{event: map[string]any{}, "revoke_offline_access": true}), testop.SignOpts{})},
		{name: "event member not empty", tok: lt(events(map[string]any{event: map[string]any{"x": 1}}), testop.SignOpts{})},
		{name: "iat in the future within skew", tok: lt(set("iat", ago(-30*time.Second)), testop.SignOpts{})},
		{name: "expired within skew", tok: lt(set("exp", ago(30*time.Second)), testop.SignOpts{})},
		{name: "missing exp allowed", tok: lt(del("exp"), testop.SignOpts{}),
			cfg: func(c *logout.VerifierConfig) { c.AllowMissingExp = true }},
		{name: "HS256 with client secret", tok: lt(nil, testop.SignOpts{Alg: "HS256"}), cfg: withAlgs("RS256", "HS256")},
		{name: "HS512 only, no key set", tok: lt(nil, testop.SignOpts{Alg: "HS512", Key: strings.Repeat("k", 64)}),
			cfg: func(c *logout.VerifierConfig) {
				c.SigningAlgs, c.KeySet, c.ClientSecret = []string{"HS512"}, nil, strings.Repeat("k", 64)
			}},
		{name: "ES256 when allowed", tok: lt(nil, testop.SignOpts{Alg: "ES256"}), cfg: withAlgs("ES256")},
		{name: "RequireTyp with logout+jwt", tok: lt(nil, testop.SignOpts{Typ: "logout+jwt"}),
			cfg: func(c *logout.VerifierConfig) { c.RequireTyp = true }},
		{name: "ExpectedTyp without application/", tok: lt(nil, testop.SignOpts{Typ: "application/secevent+jwt"}),
			cfg: func(c *logout.VerifierConfig) { c.ExpectedTyp = "secevent+jwt" }},
		{name: "encrypted RSA-OAEP-256", tok: encrypted(lt(nil, testop.SignOpts{}), &k.rsa.PublicKey), cfg: withDecryption},
		{name: "encrypted ECDH-ES with kid", cfg: withDecryption,
			tok: encrypted(lt(nil, testop.SignOpts{}), jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "rp-ec"})},

		// Malformed.
		{name: "empty", tok: func(*testop.OP) string { return "" }, want: "malformed"},
		{name: "garbage", tok: func(*testop.OP) string { return "not a jwt" }, want: "malformed"},
		{name: "truncated in the payload", tok: func(op *testop.OP) string {
			s := lt(nil, testop.SignOpts{})(op)
			return s[:strings.Index(s, ".")+20]
		}, want: "malformed"},
		{name: "signature part cut", tok: func(op *testop.OP) string {
			s := lt(nil, testop.SignOpts{})(op)
			return s[:strings.LastIndex(s, ".")]
		}, want: "malformed"},
		{name: "JWS JSON serialization", tok: jsonSerialized, want: "malformed"},
		{name: "oversized", tok: lt(set("pad", strings.Repeat("a", logout.MaxTokenSize)), testop.SignOpts{}), want: "malformed"},
		{name: "JWE when no decryption keys", tok: encrypted(lt(nil, testop.SignOpts{}), &k.rsa.PublicKey), want: "malformed"},
		{name: "sub is a number", tok: lt(set("sub", 42), testop.SignOpts{}), want: "malformed"},

		// Encryption.
		{name: "plain token when encryption required", tok: lt(nil, testop.SignOpts{}), cfg: withDecryption,
			want: "encryption_required"},
		{name: "encrypted for another key", tok: encrypted(lt(nil, testop.SignOpts{}), &k.other.PublicKey),
			cfg: withDecryption, want: "decrypt"},
		{name: "encrypted alg none", tok: encrypted(none("none"), &k.rsa.PublicKey), cfg: withDecryption, want: "alg"},

		// Algorithm and signature.
		{name: "alg none", tok: none("none"), want: "alg"},
		{name: "alg None", tok: none("None"), want: "alg"},
		{name: "alg NONE", tok: none("NONE"), want: "alg"},
		{name: "alg none with HS256 allowed", tok: none("none"), cfg: withAlgs("HS256"), want: "alg"},
		{name: "suite wrong-alg: ES256 with the published ec1 key", tok: lt(nil, testop.SignOpts{Alg: "ES256"}), want: "alg"},
		{name: "HS256 not allowed", tok: lt(nil, testop.SignOpts{Alg: "HS256"}), want: "alg"},
		{name: "RS512 not allowed", tok: lt(nil, testop.SignOpts{Alg: "RS512"}), want: "alg"},
		{name: "HS256 keyed with the RSA public key DER", tok: lt(nil, testop.SignOpts{Alg: "HS256", Key: pub}),
			cfg: withAlgs("RS256", "HS256"), want: "signature"},
		{name: "HS256 keyed with the RSA public key PEM", tok: lt(nil, testop.SignOpts{Alg: "HS256", Key: pubPEM}),
			cfg: withAlgs("RS256", "HS256"), want: "signature"},
		{name: "HS256 with a wrong secret", tok: lt(nil, testop.SignOpts{Alg: "HS256", Key: strings.Repeat("w", 32)}),
			cfg: withAlgs("HS256"), want: "signature"},
		{name: "signed by an unpublished key as rs1", tok: lt(nil, testop.SignOpts{Key: stranger}), want: "signature"},
		{name: "payload swapped", tok: swapPayload, want: "signature"},

		// typ.
		{name: "typ at+jwt", tok: lt(nil, testop.SignOpts{Typ: "at+jwt"}), want: "typ"},
		{name: "typ secevent+jwt", tok: lt(nil, testop.SignOpts{Typ: "secevent+jwt"}), want: "typ"},
		{name: "typ jwt+foo", tok: lt(nil, testop.SignOpts{Typ: "jwt+foo"}), want: "typ"},
		{name: "RequireTyp and no typ", tok: lt(nil, testop.SignOpts{}),
			cfg: func(c *logout.VerifierConfig) { c.RequireTyp = true }, want: "typ"},
		{name: "RequireTyp and typ JWT", tok: lt(nil, testop.SignOpts{Typ: "JWT"}),
			cfg: func(c *logout.VerifierConfig) { c.RequireTyp = true }, want: "typ"},
		{name: "ExpectedTyp and logout+jwt", tok: lt(nil, testop.SignOpts{Typ: "logout+jwt"}),
			cfg: func(c *logout.VerifierConfig) { c.ExpectedTyp = "secevent+jwt" }, want: "typ"},

		// iss, aud, azp.
		{name: "suite wrong-iss", tok: lt(set("iss", "https://evil.example"), testop.SignOpts{}), want: "iss"},
		{name: "iss with trailing slash", tok: func(op *testop.OP) string {
			return lt(set("iss", op.URL+"/"), testop.SignOpts{})(op)
		}, want: "iss"},
		{name: "iss missing", tok: lt(del("iss"), testop.SignOpts{}), want: "iss"},
		{name: "suite wrong-aud", tok: lt(set("aud", "other"), testop.SignOpts{}), want: "aud"},
		{name: "aud missing", tok: lt(del("aud"), testop.SignOpts{}), want: "aud"},
		{name: "aud empty array", tok: lt(set("aud", []string{}), testop.SignOpts{}), want: "aud"},
		{name: "aud untrusted extra", tok: lt(set("aud", []string{"client", "api"}), testop.SignOpts{}), want: "aud"},
		{name: "aud number", tok: lt(set("aud", 7), testop.SignOpts{}), want: "aud"},
		{name: "azp other", tok: lt(set("azp", "other"), testop.SignOpts{}), want: "azp"},

		// iat and exp.
		{name: "iat missing", tok: lt(del("iat"), testop.SignOpts{}), want: "iat_missing"},
		{name: "iat a string", tok: lt(set("iat", "1700000000"), testop.SignOpts{}), want: "iat_missing"},
		{name: "iat null", tok: lt(set("iat", nil), testop.SignOpts{}), want: "iat_missing"},
		{name: "iat in the future", tok: lt(set("iat", ago(-5*time.Minute)), testop.SignOpts{}), want: "iat_future"},
		{name: "iat too old", tok: lt(set("iat", ago(11*time.Minute)), testop.SignOpts{}), want: "iat_too_old"},
		{name: "exp missing", tok: lt(del("exp"), testop.SignOpts{}), want: "exp_missing"},
		{name: "exp missing allowed but a string", tok: lt(set("exp", "soon"), testop.SignOpts{}),
			cfg: func(c *logout.VerifierConfig) { c.AllowMissingExp = true }, want: "exp_missing"},
		{name: "expired", tok: lt(set("exp", ago(2*time.Minute)), testop.SignOpts{}), want: "expired"},

		// sub and sid, events, nonce, jti.
		{name: "neither sub nor sid", tok: lt(del("sub", "sid"), testop.SignOpts{}), want: "sub_sid_missing"},
		{name: "empty sub and no sid", tok: lt(func(c map[string]any) { c["sub"] = ""; delete(c, "sid") },
			testop.SignOpts{}), want: "sub_sid_missing"},
		{name: "suite no-event", tok: lt(del("events"), testop.SignOpts{}), want: "events"},
		{name: "suite wrong-event", tok: lt(events(map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}),
			testop.SignOpts{}), want: "events"},
		{name: "events empty object", tok: lt(events(map[string]any{}), testop.SignOpts{}), want: "events"},
		{name: "events array", tok: lt(events([]string{event}), testop.SignOpts{}), want: "events"},
		{name: "events string", tok: lt(events(event), testop.SignOpts{}), want: "events"},
		{name: "events null", tok: lt(events(nil), testop.SignOpts{}), want: "events"},
		{name: "event member true", tok: lt(events(map[string]any{event: true}), testop.SignOpts{}), want: "events"},
		{name: "event member string", tok: lt(events(map[string]any{event: "{}"}), testop.SignOpts{}), want: "events"},
		{name: "event member null", tok: lt(events(map[string]any{event: nil}), testop.SignOpts{}), want: "events"},
		{name: "suite with-nonce", tok: lt(set("nonce", "n"), testop.SignOpts{}), want: "nonce"},
		{name: "empty nonce", tok: lt(set("nonce", ""), testop.SignOpts{}), want: "nonce"},
		{name: "ID token as logout token", tok: idToken, want: "events"},
		{name: "jti missing", tok: lt(del("jti"), testop.SignOpts{}), want: "jti_missing"},
		{name: "jti empty", tok: lt(set("jti", ""), testop.SignOpts{}), want: "jti_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, op, tt.cfg)
			_, err := v.Verify(context.Background(), tt.tok(op))
			if got := reason(err); got != tt.want {
				t.Errorf("Verify reason = %q, want %q (err: %v)", got, tt.want, err)
			}
		})
	}
}

func TestVerifyToken(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	iat := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	raw := op.Sign(op.LogoutToken(set("iat", iat.Unix(), "exp", iat.Add(2*time.Minute).Unix(),
		"jti", "j-1", "sub", "bob", "sid", "s-1")), testop.SignOpts{})
	got, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := logout.Token{Issuer: op.URL, Subject: "bob", SID: "s-1", JTI: "j-1", Audience: []string{"client"},
		IssuedAt: iat, Expiry: iat.Add(2 * time.Minute)}
	if got.Issuer != want.Issuer || got.Subject != want.Subject || got.SID != want.SID || got.JTI != want.JTI ||
		len(got.Audience) != 1 || got.Audience[0] != "client" || !got.IssuedAt.Equal(want.IssuedAt) ||
		!got.Expiry.Equal(want.Expiry) {
		t.Errorf("Verify = %+v, want %+v", *got, want)
	}
}

func TestMissingExpDescription(t *testing.T) {
	op := testop.New(t, testop.Config{})
	_, err := newVerifier(t, op, nil).Verify(context.Background(), lt(del("exp"), testop.SignOpts{})(op))
	var ve *logout.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Description, "allow_missing_exp") {
		t.Errorf("Verify error = %v, want a description naming allow_missing_exp", err)
	}
}

func TestVerifierConfigValidate(t *testing.T) {
	ks, _ := logout.NewRemoteKeySet(logout.RemoteKeySetConfig{JWKSURL: "https://op.example/jwks"})
	ok := logout.VerifierConfig{Issuer: "https://op.example", ClientID: "c", KeySet: ks}
	tests := []struct {
		name   string
		mutate func(*logout.VerifierConfig)
		want   []string // substrings of the joined error; none means valid
	}{
		{name: "valid", mutate: func(*logout.VerifierConfig) {}},
		{name: "empty", mutate: func(c *logout.VerifierConfig) { *c = logout.VerifierConfig{} },
			want: []string{"issuer:", "client_id:", "key_set:"}},
		{name: "relative issuer", mutate: func(c *logout.VerifierConfig) { c.Issuer = "op.example" }, want: []string{"issuer:"}},
		{name: "alg none", mutate: func(c *logout.VerifierConfig) { c.SigningAlgs = []string{"RS256", "none"} },
			want: []string{"signing_algs[1]:"}},
		{name: "HS256 without secret", mutate: func(c *logout.VerifierConfig) { c.SigningAlgs = []string{"HS256"} },
			want: []string{"client_secret:"}},
		{name: "HS512 short secret", mutate: func(c *logout.VerifierConfig) {
			c.SigningAlgs, c.ClientSecret = []string{"HS512"}, strings.Repeat("s", 32)
		}, want: []string{"client_secret:"}},
		{name: "HS only needs no key set", mutate: func(c *logout.VerifierConfig) {
			c.SigningAlgs, c.ClientSecret, c.KeySet = []string{"HS256"}, strings.Repeat("s", 32), nil
		}},
		{name: "negative durations", mutate: func(c *logout.VerifierConfig) { c.ClockSkew, c.MaxTokenAge = -1, -1 },
			want: []string{"clock_skew:", "max_token_age:"}},
		{name: "public decryption key", mutate: func(c *logout.VerifierConfig) {
			c.DecryptionKeys = []jose.JSONWebKey{{Key: &rpKeys().rsa.PublicKey}}
		}, want: []string{"decryption_keys[0]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("Validate() = %v, want errors %q", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}
