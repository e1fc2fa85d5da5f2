package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AssertionLifetime is how long a client assertion is valid: long
// enough for one request, short enough that a captured one is useless.
const AssertionLifetime = 60 * time.Second

// MinRSABits is the smallest RSA key accepted for assertions.
const MinRSABits = 2048

// Key signs private_key_jwt client assertions.
type Key struct {
	signer jose.Signer
	// KeyID is the kid header: the configured one or the key's JWK
	// thumbprint (RFC 7638, SHA-256).
	KeyID string
	// Alg is the JWS algorithm.
	Alg jose.SignatureAlgorithm
	// Public is the public key, for registering it at the IdP.
	Public jose.JSONWebKey
}

// NewKey makes a Key of a private key (RSA of at least MinRSABits, EC
// P-256, P-384 or P-521, or Ed25519). kid "" means the JWK thumbprint;
// alg "" means the key type's default: RS256, ES256/384/512 by curve,
// EdDSA. An RSA key may use PS256 (or RS/PS 384, 512) instead.
func NewKey(key crypto.Signer, kid, alg string) (*Key, error) {
	def, allowed, err := algorithms(key)
	if err != nil {
		return nil, err
	}
	a := jose.SignatureAlgorithm(alg)
	if alg == "" {
		a = def
	} else if !slices.Contains(allowed, a) {
		return nil, fmt.Errorf("alg %s does not fit a %T key (use one of %v)", alg, key, allowed)
	}
	pub := jose.JSONWebKey{Key: key.Public(), Algorithm: string(a), Use: "sig"}
	if kid == "" {
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("key thumbprint: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	pub.KeyID = kid
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	return &Key{signer: signer, KeyID: kid, Alg: a, Public: pub}, nil
}

func algorithms(key crypto.Signer) (jose.SignatureAlgorithm, []jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return "", nil, fmt.Errorf("RSA key of %d bits: at least %d are needed", k.N.BitLen(), MinRSABits)
		}
		return jose.RS256, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, []jose.SignatureAlgorithm{jose.ES256}, nil
		case elliptic.P384():
			return jose.ES384, []jose.SignatureAlgorithm{jose.ES384}, nil
		case elliptic.P521():
			return jose.ES512, []jose.SignatureAlgorithm{jose.ES512}, nil
		}
		return "", nil, fmt.Errorf("EC key on curve %s: use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return jose.EdDSA, []jose.SignatureAlgorithm{jose.EdDSA}, nil
	}
	return "", nil, fmt.Errorf("%T is not an RSA, EC or Ed25519 private key", key)
}

// assertion returns a fresh client assertion (RFC 7523 §3): iss and sub
// the client id, aud the IdP's issuer, a random jti, valid for
// AssertionLifetime from now.
func (k *Key) assertion(clientID, audience string) (string, error) {
	now := time.Now()
	jti := make([]byte, 18)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("assertion jti: %w", err)
	}
	claims := jwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: jwt.Audience{audience},
		ID:       base64.RawURLEncoding.EncodeToString(jti),
		IssuedAt: jwt.NewNumericDate(now),
		// nbf is left out: a clock a little ahead of the IdP's would make
		// the assertion not yet valid.
		Expiry: jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	s, err := jwt.Signed(k.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}
