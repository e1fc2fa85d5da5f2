// Package logout ends the gateway's sessions when the OpenID Provider says
// so: it verifies back-channel logout tokens (OpenID Connect Back-Channel
// Logout 1.0 with errata set 1, §2.6), each parsed once with go-jose, and
// runs every logout path as a Service: back-channel, front-channel (by
// iss+sid, and by the session cookie alone), RP-initiated and admin, and
// the refresh-token revocation that follows a logout.
package logout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

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
	ReasonUnknownKID         = "unknown_kid"         // kid not in the JWKS, even after a refetch (or none allowed in time)
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
	// Switch names the setting(s) that would accept this token, when it
	// failed only on checks a documented switch relaxes (comma-separated
	// keys, in check order: logout_typ or require_logout_typ,
	// trusted_audiences, allow_missing_exp, frontchannel_sid_only); empty
	// otherwise. A fixed set: fit for a metric label.
	Switch string
	// Fix is the setting to change, as a config line for the log (it may
	// quote the token's typ or audiences, which are not secrets); empty
	// when Switch is.
	Fix   string
	err   error // detail for the server log
	relax relaxation
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

// relaxable marks a rejection that the switch r would have avoided.
func (e *ValidationError) relaxable(r relaxation) *ValidationError {
	e.relax = r
	return e
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
	KeySet KeySet
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

	typ        string // the typ header, for a hint
	typPresent bool
}

// Verifier verifies logout tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	algs   []jose.SignatureAlgorithm // cfg.SigningAlgs
	secret []byte                    // the HS* key
	replay ReplayCache
	// relaxed are the checks switched off, only in the copy that tells
	// whether a rejected token would pass with a switch (hint.go).
	relaxed relaxation
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
	v := &Verifier{cfg: cfg, replay: cfg.Replay}
	for _, a := range cfg.SigningAlgs {
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	if cfg.ClientSecret != "" {
		v.secret = []byte(cfg.ClientSecret)
	}
	return v, nil
}

// Verify checks a raw logout token (Back-Channel Logout §2.6) and records
// its jti. It returns a *ValidationError for a bad token and a
// *ReplayCacheError when the replay cache fails.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	tok, err := v.check(ctx, parse(raw, v.algs))
	if err != nil {
		return nil, err
	}
	if err := checkReplay(ctx, []ReplayCache{v.replay}, tok, v.replayTTL()); err != nil {
		return nil, err
	}
	return tok, nil
}

// replayTTL is how long an accepted jti is remembered: as long as a token
// with its iat can be accepted.
func (v *Verifier) replayTTL() time.Duration { return v.cfg.MaxTokenAge + 2*v.cfg.ClockSkew }

// check runs §2.6 but the replay check on a token parsed once:
// decryption, the algorithm and typ rules on the parsed header, one
// signature check against the key set (or the client secret for HS*),
// then the claim checks on the verified payload. The caller checks replay
// once per token (checkReplay), however many apps it addresses.
func (v *Verifier) check(ctx context.Context, p *parsed) (*Token, error) {
	tok, err := v.checkOnce(ctx, p)
	var ve *ValidationError
	if errors.As(err, &ve) && ve.relax != 0 {
		v.hint(ctx, p, ve)
	}
	return tok, err
}

// checkOnce is check without the hint.
func (v *Verifier) checkOnce(ctx context.Context, p *parsed) (*Token, error) {
	if p.tooLarge {
		return nil, invalid(ReasonMalformed, "the logout token is too large", nil)
	}
	jws, jwsErr := p.jws, p.jwsErr
	if len(v.cfg.DecryptionKeys) == 0 {
		if p.encrypted {
			return nil, invalid(ReasonMalformed, "encrypted logout tokens are not expected", nil)
		}
	} else {
		if p.plain {
			return nil, invalid(ReasonEncryptionRequired, "the logout token must be encrypted", nil)
		}
		if p.jwe == nil {
			return nil, invalid(ReasonMalformed, "the logout token is not a compact JWE with accepted algorithms", p.jweErr)
		}
		var derr *ValidationError
		if jws, jwsErr, derr = v.decrypt(p.jwe); derr != nil {
			return nil, derr
		}
	}
	if jwsErr != nil {
		return nil, jwsErr
	}
	hdr := jws.Signatures[0].Header
	if !slices.Contains(v.cfg.SigningAlgs, hdr.Algorithm) {
		return nil, invalid(ReasonAlg, "the logout token's signing algorithm is not the one expected", nil)
	}
	typ, present := hdr.ExtraHeaders[jose.HeaderType]
	typStr, isStr := typ.(string)
	if present && !isStr {
		return nil, invalid(ReasonMalformed, "the logout token's typ header is not a string", nil)
	}
	if !v.typOK(typStr, present) {
		err := invalid(ReasonTyp, "the logout token's typ header is not accepted", nil)
		if typRelaxable(typStr, present) {
			err.relaxable(relaxTyp)
		}
		return nil, err
	}
	if err := v.verifySignature(ctx, jws); err != nil {
		if errors.Is(err, errUnknownKID) {
			return nil, invalid(ReasonUnknownKID, "the logout token's key id is unknown", err)
		}
		return nil, invalid(ReasonSignature, "the logout token's signature is invalid", err)
	}
	claims, err := p.claimsOf(jws)
	if err != nil {
		return nil, invalid(ReasonMalformed, "the logout token's claims are not a JSON object", err)
	}
	tok, verr := v.checkClaims(claims)
	if verr != nil {
		return nil, verr
	}
	tok.typ, tok.typPresent = typStr, present
	return tok, nil
}

// verifySignature checks the signature once: HS* with the client secret
// and nothing else, the rest against the key set. The algorithm is
// already pinned to SigningAlgs.
func (v *Verifier) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) error {
	if strings.HasPrefix(jws.Signatures[0].Header.Algorithm, "HS") {
		if v.secret == nil {
			return errors.New("no client secret for HMAC")
		}
		_, err := jws.Verify(v.secret)
		return err
	}
	if v.cfg.KeySet == nil {
		return errors.New("no key set for asymmetric signatures")
	}
	return v.cfg.KeySet.VerifyJWS(ctx, jws)
}

// typOK applies the typ rules: by default absent, logout+jwt or JWT.
func (v *Verifier) typOK(typ string, present bool) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	switch {
	case v.relaxed&relaxTyp != 0:
		return true
	case v.cfg.ExpectedTyp != "":
		return present && norm(typ) == norm(v.cfg.ExpectedTyp)
	case !present:
		return !v.cfg.RequireTyp
	case v.cfg.RequireTyp:
		return norm(typ) == "logout+jwt"
	default:
		return norm(typ) == "logout+jwt" || norm(typ) == "jwt"
	}
}

// decrypt opens a JWE with the DecryptionKeys and parses the nested JWS
// (with SigningAlgs). err is a rejection of the JWE itself; jwsErr one of
// the nested token.
func (v *Verifier) decrypt(jwe *jose.JSONWebEncryption) (jws *jose.JSONWebSignature, jwsErr, err *ValidationError) {
	if iss, ok := jwe.Header.ExtraHeaders["iss"]; ok && iss != v.cfg.Issuer {
		return nil, nil, invalid(ReasonIss, "the encrypted logout token's iss header does not match the issuer", nil)
	}
	var pt []byte
	derr := errors.New("no decryption key matches the kid")
	for _, k := range v.cfg.DecryptionKeys {
		if jwe.Header.KeyID != "" && k.KeyID != jwe.Header.KeyID {
			continue
		}
		if pt, derr = jwe.Decrypt(k); derr == nil {
			break
		}
	}
	if derr != nil {
		return nil, nil, invalid(ReasonDecrypt, "the logout token could not be decrypted", derr)
	}
	if len(pt) > MaxTokenSize || bytes.Count(pt, []byte(".")) != 2 {
		return nil, nil, invalid(ReasonMalformed, "the encrypted logout token does not contain a signed JWT", nil)
	}
	jws, jwsErr = parseJWS(string(pt), v.algs)
	return jws, jwsErr, nil
}
