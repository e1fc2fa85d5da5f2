// Package logout ends the gateway's sessions when the OpenID Provider says
// so: it verifies back-channel logout tokens (OpenID Connect Back-Channel
// Logout 1.0 with errata set 1, §2.6) with go-oidc plus the checks go-oidc
// does not do, and runs back-channel, front-channel and RP-initiated logout
// as a Service.
package logout

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the largest raw logout token Verify parses, in bytes.
const MaxTokenSize = 16 << 10

// Reasons a logout token is rejected: the stable values of
// ValidationError.Reason, meant as a metric label.
const (
	ReasonMalformed          = "malformed"           // not a compact JWS/JWE, too large, bad JSON or claim types
	ReasonEncryptionRequired = "encryption_required" // DecryptionKeys are set but the token is not a JWE
	ReasonDecrypt            = "decrypt"             // no decryption key opens the JWE
	ReasonAlg                = "alg"                 // alg is none or not in SigningAlgs
	ReasonSignature          = "signature"           // the signature (or MAC) does not verify
	ReasonUnknownKID         = "unknown_kid"         // kid not in the JWKS, and no refetch allowed now
	ReasonTyp                = "typ"                 // typ header not accepted
	ReasonIss                = "iss"                 // iss differs from Issuer
	ReasonAud                = "aud"                 // aud lacks client_id or names an untrusted audience
	ReasonAzp                = "azp"                 // azp present and not client_id
	ReasonIatMissing         = "iat_missing"         // no numeric iat
	ReasonIatFuture          = "iat_future"          // iat later than now + ClockSkew
	ReasonIatTooOld          = "iat_too_old"         // iat earlier than now - MaxTokenAge
	ReasonExpMissing         = "exp_missing"         // no numeric exp and AllowMissingExp is off
	ReasonExpired            = "expired"             // now is after exp + ClockSkew
	ReasonSubSIDMissing      = "sub_sid_missing"     // neither a non-empty sub nor sid
	ReasonEvents             = "events"              // events lacks the back-channel logout member object
	ReasonNonce              = "nonce"               // a nonce claim is present
	ReasonJTIMissing         = "jti_missing"         // no non-empty jti
	ReasonReplay             = "replay"              // this iss+jti was already accepted
)

// ValidationError is a rejected logout token: the back-channel endpoint
// answers 400. Reason is one of the Reason* constants; Description is a
// sentence safe to send to the client (it never echoes token content).
type ValidationError struct {
	Reason      string
	Description string
	err         error // detail for the server log
}

func (e *ValidationError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("logout token rejected (%s): %s: %v", e.Reason, e.Description, e.err)
	}
	return fmt.Sprintf("logout token rejected (%s): %s", e.Reason, e.Description)
}

func (e *ValidationError) Unwrap() error { return e.err }

func invalid(reason, desc string, err error) *ValidationError {
	return &ValidationError{Reason: reason, Description: desc, err: err}
}

// ReplayCacheError means the replay cache failed, so the token could not be
// checked: not the token's fault (answer with an application error).
type ReplayCacheError struct{ Err error }

func (e *ReplayCacheError) Error() string { return "logout token replay check: " + e.Err.Error() }
func (e *ReplayCacheError) Unwrap() error { return e.Err }

// VerifierConfig configures a Verifier. Zero values are documented per field.
type VerifierConfig struct {
	Issuer       string // required; compared exactly with iss
	ClientID     string // required; must be in aud
	ClientSecret string // the HS* key (UTF-8 bytes); required when SigningAlgs has HS*
	// KeySet verifies asymmetric signatures; required unless SigningAlgs are
	// all HS*. Use NewRemoteKeySet for the OP's jwks_uri.
	KeySet oidc.KeySet
	// SigningAlgs are the accepted JWS algs (the client's
	// id_token_signed_response_alg); default ["RS256"]. "none" is refused.
	SigningAlgs []string
	// TrustedAudiences are audiences besides ClientID that may appear in aud.
	TrustedAudiences []string
	ClockSkew        time.Duration // leeway for iat and exp; zero means 60s
	MaxTokenAge      time.Duration // oldest acceptable iat; zero means 10m
	// AllowMissingExp accepts tokens without exp (exp became REQUIRED only
	// in errata 1, 2023).
	AllowMissingExp bool
	// RequireTyp requires typ logout+jwt (the spec only recommends it; the
	// conformance suite sends no typ).
	RequireTyp bool
	// ExpectedTyp, when set, is the only typ accepted (case-insensitive,
	// "application/" optional); it overrides RequireTyp.
	ExpectedTyp string
	// DecryptionKeys are private keys for encrypted logout tokens; when set,
	// every token must be a JWE.
	DecryptionKeys []jose.JSONWebKey
	// Replay records accepted jtis; nil means a new in-memory cache (use a
	// shared one when running several replicas).
	Replay ReplayCache
	Now    func() time.Time // default time.Now
}

var hmacSize = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports every problem in c, joined.
func (c VerifierConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || !u.IsAbs() {
		add("issuer: must be an absolute URL")
	}
	if c.ClientID == "" {
		add("client_id: is required")
	}
	algs := c.SigningAlgs
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	needKeySet := false
	for i, alg := range algs {
		switch {
		case hmacSize[alg] > 0:
			if len(c.ClientSecret) < hmacSize[alg] {
				add("client_secret: %s needs a client secret of at least %d bytes", alg, hmacSize[alg])
			}
		case slices.Contains(asymmetricAlgs, alg):
			needKeySet = true
		default:
			add("signing_algs[%d]: %q is not a supported signing algorithm", i, alg)
		}
	}
	if needKeySet && c.KeySet == nil {
		add("key_set: is required for asymmetric signing algorithms")
	}
	if c.ClockSkew < 0 {
		add("clock_skew: must not be negative")
	}
	if c.MaxTokenAge < 0 {
		add("max_token_age: must not be negative")
	}
	for i, k := range c.DecryptionKeys {
		switch k.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
			if !k.Valid() {
				add("decryption_keys[%d]: invalid key", i)
			}
		default:
			add("decryption_keys[%d]: must be an RSA or EC private key", i)
		}
	}
	return errors.Join(errs...)
}

// Token is a verified logout token.
type Token struct {
	Issuer   string
	Subject  string // may be empty when SID is set
	SID      string // may be empty when Subject is set: all sessions of iss+sub
	JTI      string
	Audience []string
	IssuedAt time.Time
	Expiry   time.Time // zero if the token had no exp (AllowMissingExp)
}

// Verifier verifies logout tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	oidc   *oidc.IDTokenVerifier
	replay ReplayCache
}

// NewVerifier validates cfg, applies its defaults and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("logout verifier config: %w", err)
	}
	if len(cfg.SigningAlgs) == 0 {
		cfg.SigningAlgs = []string{"RS256"}
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 60 * time.Second
	}
	if cfg.MaxTokenAge == 0 {
		cfg.MaxTokenAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Replay == nil {
		cfg.Replay = NewMemoryReplayCache()
	}
	ks := &keySet{inner: cfg.KeySet}
	if cfg.ClientSecret != "" {
		ks.secret = []byte(cfg.ClientSecret)
	}
	v := &Verifier{cfg: cfg, replay: cfg.Replay}
	v.oidc = oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{
		ClientID:             cfg.ClientID,
		SupportedSigningAlgs: cfg.SigningAlgs,
		SkipExpiryCheck:      true, // exp (optional, with skew) and iat are checked here
		Now:                  cfg.Now,
	})
	return v, nil
}

// Verify checks a raw logout token (Back-Channel Logout §2.6) and records
// its jti. It returns a *ValidationError for a bad token and a
// *ReplayCacheError when the replay cache fails.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > MaxTokenSize {
		return nil, invalid(ReasonMalformed, "the logout token is too large", nil)
	}
	jws, err := v.decrypt(raw)
	if err != nil {
		return nil, err
	}
	hdr, err := parseHeader(jws)
	if err != nil {
		return nil, invalid(ReasonMalformed, "the logout token is not a compact JWS", err)
	}
	if strings.EqualFold(hdr.alg, "none") {
		return nil, invalid(ReasonAlg, "unsigned logout tokens (alg none) are not accepted", nil)
	}
	if !slices.Contains(v.cfg.SigningAlgs, hdr.alg) {
		return nil, invalid(ReasonAlg, "the logout token's signing algorithm is not the one expected", nil)
	}
	if !v.typOK(hdr.typ) {
		return nil, invalid(ReasonTyp, "the logout token's typ header is not accepted", nil)
	}

	// go-oidc parses, pins alg and checks signature, iss and aud; the probe
	// tells which step failed, and hands over the verified payload.
	p := &probe{}
	_, oerr := v.oidc.Verify(context.WithValue(ctx, probeKey{}, p), jws)
	if !p.called {
		return nil, invalid(ReasonMalformed, "the logout token could not be parsed", oerr)
	}
	if p.err != nil {
		if p.reason == ReasonUnknownKID {
			return nil, invalid(ReasonUnknownKID, "the logout token's key id is unknown", p.err)
		}
		return nil, invalid(ReasonSignature, "the logout token's signature is invalid", p.err)
	}
	tok, verr := v.checkClaims(p.payload)
	if verr != nil {
		return nil, verr
	}
	if oerr != nil { // a check of go-oidc's that ours did not mirror
		return nil, invalid(ReasonMalformed, "the logout token's claims are invalid", oerr)
	}
	seen, err := v.replay.Seen(ctx, replayKey(tok.Issuer, tok.JTI), v.cfg.MaxTokenAge+2*v.cfg.ClockSkew)
	if err != nil {
		return nil, &ReplayCacheError{Err: err}
	}
	if seen {
		return nil, invalid(ReasonReplay, "the logout token was already used", nil)
	}
	return tok, nil
}

// typOK applies the typ rules: by default absent, logout+jwt or JWT.
func (v *Verifier) typOK(typ *string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	switch {
	case v.cfg.ExpectedTyp != "":
		return typ != nil && norm(*typ) == norm(v.cfg.ExpectedTyp)
	case typ == nil:
		return !v.cfg.RequireTyp
	case v.cfg.RequireTyp:
		return norm(*typ) == "logout+jwt"
	default:
		return norm(*typ) == "logout+jwt" || norm(*typ) == "jwt"
	}
}

// Accepted JWE algorithms: no RSA1_5 (padding oracle), no PBES2, no dir.
var (
	keyAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP, jose.RSA_OAEP_256,
		jose.ECDH_ES, jose.ECDH_ES_A128KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A256KW}
	contentEncs = []jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM,
		jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512}
)

// decrypt returns the nested JWS of an encrypted token, enforcing that
// tokens are encrypted exactly when DecryptionKeys are configured.
func (v *Verifier) decrypt(raw string) (string, error) {
	parts := strings.Count(raw, ".") + 1
	if len(v.cfg.DecryptionKeys) == 0 {
		if parts == 5 {
			return "", invalid(ReasonMalformed, "encrypted logout tokens are not expected", nil)
		}
		return raw, nil
	}
	if parts == 3 {
		return "", invalid(ReasonEncryptionRequired, "the logout token must be encrypted", nil)
	}
	jwe, err := jose.ParseEncryptedCompact(raw, keyAlgs, contentEncs)
	if err != nil {
		return "", invalid(ReasonMalformed, "the logout token is not a compact JWE with accepted algorithms", err)
	}
	if iss, ok := jwe.Header.ExtraHeaders["iss"]; ok && iss != v.cfg.Issuer {
		return "", invalid(ReasonIss, "the encrypted logout token's iss header does not match the issuer", nil)
	}
	var pt []byte
	err = errors.New("no decryption key matches the kid")
	for _, k := range v.cfg.DecryptionKeys {
		if jwe.Header.KeyID != "" && k.KeyID != jwe.Header.KeyID {
			continue
		}
		if pt, err = jwe.Decrypt(k); err == nil {
			break
		}
	}
	if err != nil {
		return "", invalid(ReasonDecrypt, "the logout token could not be decrypted", err)
	}
	if len(pt) > MaxTokenSize || strings.Count(string(pt), ".") != 2 {
		return "", invalid(ReasonMalformed, "the encrypted logout token does not contain a signed JWT", nil)
	}
	return string(pt), nil
}
