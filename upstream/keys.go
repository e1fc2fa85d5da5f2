package upstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

// MinRSABits is the smallest RSA modulus accepted for a signing key.
const MinRSABits = 2048

// LoadPrivateKey reads a PEM private key: PKCS #8 "PRIVATE KEY", PKCS #1
// "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY", skipping any other block
// before it (OpenSSL's `ecparam -genkey` writes "EC PARAMETERS" first).
// It is the gateway's one PEM key loader: cmd uses it for the signing
// keys and for the apps' ID-token decryption keys.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// LoadSigningKey loads a key with LoadPrivateKey and checks it can sign
// logout tokens: RSA of at least MinRSABits, or EC P-256.
func LoadSigningKey(path string) (crypto.Signer, error) {
	key, err := LoadPrivateKey(path)
	if err != nil {
		return nil, err
	}
	if _, err := keyAlgorithm(key); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return signer, nil
	}
}

// keyAlgorithm returns the JWS algorithm for key, or why it cannot sign.
func keyAlgorithm(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return "", fmt.Errorf("RSA key has %d bits, want at least %d", bits, MinRSABits)
		}
		return jose.RS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("EC key on curve %s, want P-256", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	default:
		return "", fmt.Errorf("unsupported key type %T, want RSA or EC P-256", key)
	}
}

func newSigningKey(key crypto.Signer) (signingKey, error) {
	alg, err := keyAlgorithm(key)
	if err != nil {
		return signingKey{}, err
	}
	pub := jose.JSONWebKey{Key: key.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return signingKey{}, fmt.Errorf("key thumbprint: %w", err)
	}
	return signingKey{key: key, alg: alg, kid: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

func (k signingKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}
