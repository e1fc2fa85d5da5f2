package testop

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// BackchannelLogoutEvent is the events member a logout token must carry.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// SignOpts says how Sign protects a token.
type SignOpts struct {
	// Alg is the JWS alg: "RS256" (default), any RS*/PS*/ES* go-jose knows,
	// HS256/384/512 (keyed with Key, else the client secret), or "none" in
	// any letter case for an unsigned token with exactly that alg value.
	Alg string
	// KID is the kid header; empty means the default for the key ("rs1"
	// for RSA, "ec1" for EC, none for HMAC and none).
	KID   string
	NoKID bool   // omit kid even where a default exists
	Typ   string // the typ header; empty means absent
	// Key overrides the signing key: a crypto.Signer private key for
	// RS/PS/ES, []byte or string for HS.
	Key any
}

// Sign returns a compact JWS over claims. It fails the test on error.
func (op *OP) Sign(claims map[string]any, opts SignOpts) string {
	op.t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		op.t.Fatalf("testop: marshal claims: %v", err)
	}
	alg := cmp.Or(opts.Alg, "RS256")
	if strings.EqualFold(alg, "none") {
		return unsigned(alg, opts, payload)
	}
	key, kid := any(op.rsa), "rs1"
	switch {
	case strings.HasPrefix(alg, "HS"):
		key, kid = []byte(op.cfg.ClientSecret), ""
	case strings.HasPrefix(alg, "ES"):
		key, kid = op.ec, "ec1"
	}
	if s, ok := opts.Key.(string); ok {
		key = []byte(s)
	} else if opts.Key != nil {
		key = opts.Key
	}
	kid = cmp.Or(opts.KID, kid)
	so := &jose.SignerOptions{}
	if kid != "" && !opts.NoKID {
		so = so.WithHeader("kid", kid)
	}
	if opts.Typ != "" {
		so = so.WithType(jose.ContentType(opts.Typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, so)
	if err != nil {
		op.t.Fatalf("testop: signer for %s: %v", alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		op.t.Fatalf("testop: sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		op.t.Fatalf("testop: serialize: %v", err)
	}
	return out
}

// unsigned builds an alg "none" JWT by hand: go-jose refuses to make one.
func unsigned(alg string, opts SignOpts, payload []byte) string {
	h := map[string]string{"alg": alg}
	if opts.KID != "" && !opts.NoKID {
		h["kid"] = opts.KID
	}
	if opts.Typ != "" {
		h["typ"] = opts.Typ
	}
	hb, _ := json.Marshal(h)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(hb) + "." + enc(payload) + "."
}

// LogoutToken returns the claims of a valid logout token for the Config's
// client, like the conformance suite's: iss, string aud, iat now, exp
// iat+120s, a random jti, the back-channel logout event, sub (the current
// user) and sid (the latest login's, or a random one). mutate, if not nil,
// edits them before they are returned.
func (op *OP) LogoutToken(mutate func(claims map[string]any)) map[string]any {
	op.mu.Lock()
	sub, sid := op.sub, op.lastSID
	op.mu.Unlock()
	if sid == "" {
		sid = random(16)
	}
	now := time.Now()
	c := map[string]any{
		"iss":    op.URL,
		"aud":    op.cfg.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(120 * time.Second).Unix(),
		"jti":    random(16),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
		"sub":    sub,
		"sid":    sid,
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

// Encrypt wraps a compact JWS in a JWE for the recipient's public key
// (*rsa.PublicKey: RSA-OAEP-256; *ecdsa.PublicKey: ECDH-ES+A256KW), with
// A256GCM, cty "JWT" and iss copied into the header. The recipient may also
// be a jose.JSONWebKey, whose kid then goes into the header.
func (op *OP) Encrypt(jws string, recipient any) string {
	op.t.Helper()
	key := recipient
	kid := ""
	if jwk, ok := recipient.(jose.JSONWebKey); ok {
		key, kid = jwk.Key, jwk.KeyID
	}
	var alg jose.KeyAlgorithm
	switch key.(type) {
	case *rsa.PublicKey:
		alg = jose.RSA_OAEP_256
	case *ecdsa.PublicKey:
		alg = jose.ECDH_ES_A256KW
	default:
		op.t.Fatalf("testop: encrypt: unsupported recipient key %T", key)
	}
	eo := (&jose.EncrypterOptions{}).WithContentType("JWT").WithHeader("iss", op.URL)
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, eo)
	if err != nil {
		op.t.Fatalf("testop: encrypter: %v", err)
	}
	obj, err := enc.Encrypt([]byte(jws))
	if err != nil {
		op.t.Fatalf("testop: encrypt: %v", err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		op.t.Fatalf("testop: serialize: %v", err)
	}
	return out
}

// PublicKey returns the public key published as kid "rs1" or "ec1", or nil.
func (op *OP) PublicKey(kid string) crypto.PublicKey {
	switch kid {
	case "rs1":
		return op.rsa.Public()
	case "ec1":
		return op.ec.Public()
	}
	return nil
}
