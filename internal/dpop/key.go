// Package dpop owns the client side of DPoP (RFC 9449): a session's
// proof key, the proofs it signs (typ dpop+jwt, the public key in the jwk
// header, htm, htu, iat, jti, ath, nonce), the nonces servers hand out
// (remembered per origin), an http.RoundTripper that adds proofs and
// retries once on a use_dpop_nonce challenge, and a proof verifier for
// test servers. It imports nothing of the project.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ProofType is the typ header of a DPoP proof.
const ProofType = "dpop+jwt"

// Key is a session's proof key (ES256, P-256), parsed once and ready to
// sign: its thumbprint and its proofs' protected header (alg, typ and the
// public key as jwk, base64url-encoded) are computed when it is made, so
// a proof costs the claims' JSON and one signature.
type Key struct {
	raw    []byte
	priv   *ecdsa.PrivateKey
	header string // base64url of the protected header
	jkt    string
}

// NewKey draws a new random key.
func NewKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return fromPrivate(priv)
}

// ParseKey reads a key written by Key.Bytes (the raw P-256 scalar).
func ParseKey(raw []byte) (*Key, error) {
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return fromPrivate(priv)
}

func fromPrivate(priv *ecdsa.PrivateKey) (*Key, error) {
	raw, err := priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	pub := &jose.JSONWebKey{Key: &priv.PublicKey}
	jwk, err := pub.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	header, err := json.Marshal(struct {
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
		Typ string          `json:"typ"`
	}{string(jose.ES256), jwk, ProofType})
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return &Key{raw: raw, priv: priv, header: base64.RawURLEncoding.EncodeToString(header), jkt: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// Bytes returns the private key to store (32 bytes). The caller must
// keep it as secret as the tokens it binds.
func (k *Key) Bytes() []byte { return k.raw }

// Thumbprint is the JWK SHA-256 thumbprint of the public key: the jkt of
// the tokens bound to it (cnf.jkt, dpop_jkt).
func (k *Key) Thumbprint() string { return k.jkt }

// claims are a proof's payload.
type claims struct {
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	JTI   string `json:"jti"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof signs a proof for a request of method to u (its query and
// fragment are left out). accessToken, when not empty, gives ath (a
// request to a resource server); nonce, when not empty, is the server's
// last DPoP-Nonce.
func (k *Key) Proof(method string, u *url.URL, accessToken, nonce string, now time.Time) (string, error) {
	var jti [16]byte
	rand.Read(jti[:])
	c := claims{HTM: method, HTU: HTU(u), IAT: now.Unix(), JTI: base64.RawURLEncoding.EncodeToString(jti[:]), Nonce: nonce}
	if accessToken != "" {
		c.ATH = ATH(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	// A compact JWS (RFC 7515) over the key's ready header: ES256 is
	// ECDSA P-256 over the SHA-256 of "header.payload", r and s as two
	// 32-byte big-endian integers (RFC 7518 §3.4).
	enc := base64.RawURLEncoding
	const sigLen = 64
	b := make([]byte, 0, len(k.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(sigLen))
	b = append(b, k.header...)
	b = append(b, '.')
	b = enc.AppendEncode(b, payload)
	digest := sha256.Sum256(b)
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign dpop proof: %w", err)
	}
	var sig [sigLen]byte
	r.FillBytes(sig[:sigLen/2])
	s.FillBytes(sig[sigLen/2:])
	b = append(b, '.')
	b = enc.AppendEncode(b, sig[:])
	return string(b), nil
}

// HTU is a proof's htu for u: scheme, host and path, without query and
// fragment.
func HTU(u *url.URL) string {
	path := u.EscapedPath()
	var b strings.Builder
	b.Grow(len(u.Scheme) + 3 + len(u.Host) + len(path))
	b.WriteString(strings.ToLower(u.Scheme))
	b.WriteString("://")
	b.WriteString(strings.ToLower(u.Host))
	b.WriteString(path)
	return b.String()
}

// ATH is a proof's ath for accessToken: base64url(SHA-256(token)).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// errNoKey means a bound request has no key.
var errNoKey = errors.New("dpop: no key")
