package upstream

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/bffgate/bffgate/internal/oidcspec"
)

// LogoutTokenLifetime is exp - iat of the logout tokens the gateway signs
// (Back-Channel Logout §4 encourages at most two minutes).
const LogoutTokenLifetime = 2 * time.Minute

// SignerConfig configures the gateway as the issuer of logout tokens for
// its downstream apps.
type SignerConfig struct {
	// Issuer is the "iss" of every token and of the discovery document:
	// server.public_url, exactly as downstream apps configure it.
	Issuer string `toml:"-"`
	// KeyFile is a PEM private key (PKCS #8, PKCS #1 or SEC 1): RSA of at
	// least 2048 bits signs with RS256, EC P-256 with ES256. Empty means an
	// RSA-2048 key is generated at start-up (and changes on every restart).
	KeyFile string `toml:"key_file"`
	// PreviousKeyFiles are keys still published in the JWKS so tokens they
	// signed keep verifying during a rotation. They never sign.
	PreviousKeyFiles []string `toml:"previous_key_files"`
	// Now is the clock for iat/exp. Default time.Now.
	Now func() time.Time `toml:"-"`
}

// Validate reports every invalid field at once. It does not read the key
// files; NewSigner does.
func (c SignerConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		errs = append(errs, errors.New("issuer: must be set"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs = append(errs, errors.New("issuer: must be an absolute http(s) URL"))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, errors.New("issuer: must not contain a query or fragment"))
	}
	for i, f := range c.PreviousKeyFiles {
		if f == "" {
			errs = append(errs, fmt.Errorf("previous_key_files[%d]: must not be empty", i))
		}
	}
	return errors.Join(errs...)
}

// LogoutClaims are the per-token inputs of a logout token.
type LogoutClaims struct {
	Audience string // "aud": the downstream app's client id; required
	Subject  string // "sub"; Subject or SID is required
	SID      string // "sid"; omitted when empty
	// JTI is the "jti". Keep it stable across retries of one notification;
	// empty means a new random one (see NewJTI).
	JTI string
	// Typ is the JOSE header "typ". Default "logout+jwt"; some receivers
	// want "JWT".
	Typ string
}

// Signer signs the gateway's logout tokens and publishes its public keys.
// It is safe for concurrent use.
type Signer struct {
	issuer string
	now    func() time.Time

	// The keys never change after NewSigner (rotation is a restart with
	// the old key in previous_key_files), so no lock guards them.
	current  signingKey
	previous []signingKey // from PreviousKeyFiles, always published
	jwks     []byte       // precomputed in NewSigner
}

type signingKey struct {
	key crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
	alg jose.SignatureAlgorithm
	kid string
}

// NewSigner loads (or generates) the signing key and the previous keys.
func NewSigner(cfg SignerConfig, logger *slog.Logger) (*Signer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Signer{issuer: cfg.Issuer, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var key crypto.Signer
	if cfg.KeyFile == "" {
		k, err := rsa.GenerateKey(rand.Reader, MinRSABits)
		if err != nil {
			return nil, fmt.Errorf("signer: generate key: %w", err)
		}
		key = k
	} else {
		k, err := LoadSigningKey(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("signer: %w", err)
		}
		key = k
	}
	cur, err := newSigningKey(key)
	if err != nil {
		return nil, fmt.Errorf("signer: key_file: %w", err)
	}
	s.current = cur
	for i, f := range cfg.PreviousKeyFiles {
		k, err := LoadSigningKey(f)
		if err != nil {
			return nil, fmt.Errorf("signer: previous_key_files[%d]: %w", i, err)
		}
		sk, err := newSigningKey(k)
		if err != nil {
			return nil, fmt.Errorf("signer: previous_key_files[%d]: %w", i, err)
		}
		s.previous = append(s.previous, sk)
	}
	var set jose.JSONWebKeySet
	for _, k := range s.published() {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	if s.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("signer: marshal jwks: %w", err)
	}
	if cfg.KeyFile == "" {
		logger.Warn("no signing key_file configured: generated an RSA-2048 key; downstream apps will see a new key after every restart",
			"kid", cur.kid)
	}
	return s, nil
}

// published returns the keys in the JWKS, current first, without
// duplicates.
func (s *Signer) published() []signingKey {
	keys := []signingKey{s.current}
	for _, k := range s.previous {
		if !slices.ContainsFunc(keys, func(p signingKey) bool { return p.kid == k.kid }) {
			keys = append(keys, k)
		}
	}
	return keys
}

// JWKS returns the JSON Web Key Set to serve at the jwks_uri: the public
// keys, current first, each with "use": "sig", "alg" and "kid".
func (s *Signer) JWKS() []byte { return s.jwks }

// Discovery returns the OpenID Provider metadata to serve at
// Issuer + "/.well-known/openid-configuration", for downstream apps that
// validate the gateway's logout tokens. jwksURI is where JWKS is served.
//
// The gateway is no authorization server for its downstream apps, so the
// document has no authorization_endpoint or token_endpoint; go-oidc's
// NewProvider does not require them.
func (s *Signer) Discovery(jwksURI string) []byte {
	var algs []string
	for _, k := range s.published() {
		if !slices.Contains(algs, string(k.alg)) {
			algs = append(algs, string(k.alg))
		}
	}
	doc := struct {
		Issuer                            string   `json:"issuer"`
		JWKSURI                           string   `json:"jwks_uri"`
		ResponseTypesSupported            []string `json:"response_types_supported"`
		SubjectTypesSupported             []string `json:"subject_types_supported"`
		IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
		BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported"`
		BackchannelLogoutSessionSupported bool     `json:"backchannel_logout_session_supported"`
		FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
		FrontchannelLogoutSessionSupport  bool     `json:"frontchannel_logout_session_supported"`
	}{
		Issuer:                            s.issuer,
		JWKSURI:                           jwksURI,
		ResponseTypesSupported:            []string{"code"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  algs,
		BackchannelLogoutSupported:        true,
		BackchannelLogoutSessionSupported: true,
		FrontchannelLogoutSupported:       true,
		FrontchannelLogoutSessionSupport:  true,
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("upstream: marshal discovery: " + err.Error()) // strings and bools only
	}
	return b
}

// KeyID returns the kid of the current signing key.
func (s *Signer) KeyID() string { return s.current.kid }

// LogoutToken signs a back-channel logout token for one downstream app:
// iss, aud (a string), iat, exp = iat + 2m, jti, events, and sub and/or
// sid. It never carries a nonce.
func (s *Signer) LogoutToken(c LogoutClaims) (string, error) {
	if c.Audience == "" {
		return "", errors.New("signer: logout token: audience must be set")
	}
	if c.Subject == "" && c.SID == "" {
		return "", errors.New("signer: logout token: subject or sid must be set")
	}
	if c.JTI == "" {
		c.JTI = NewJTI()
	}
	typ := c.Typ
	if typ == "" {
		typ = "logout+jwt"
	}
	key := s.current

	sig, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.alg, Key: jose.JSONWebKey{Key: key.key, KeyID: key.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", fmt.Errorf("signer: logout token: %w", err)
	}
	now := s.now()
	claims := struct {
		Issuer   string                    `json:"iss"`
		Audience string                    `json:"aud"`
		IssuedAt *jwt.NumericDate          `json:"iat"`
		Expiry   *jwt.NumericDate          `json:"exp"`
		JTI      string                    `json:"jti"`
		Events   map[string]map[string]any `json:"events"`
		Subject  string                    `json:"sub,omitempty"`
		SID      string                    `json:"sid,omitempty"`
	}{
		Issuer:   s.issuer,
		Audience: c.Audience,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(LogoutTokenLifetime)),
		JTI:      c.JTI,
		Events:   map[string]map[string]any{oidcspec.BackchannelLogoutEvent: {}},
		Subject:  c.Subject,
		SID:      c.SID,
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signer: logout token: %w", err)
	}
	return tok, nil
}

// NewJTI returns a random 128-bit token id, base64url without padding.
func NewJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
