package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// tokenCipher seals the tokens a shared store keeps at rest (access,
// refresh and ID tokens, and the ID token's claims) with AES-256-GCM, so
// that a Redis dump or MONITOR shows no usable token. The key is derived
// from the session secret (DeriveKey, purpose "token-at-rest"); every
// write draws a fresh random nonce, and the session id is the additional
// data, so a sealed value moved to another session's record does not
// open.
type tokenCipher struct {
	aead cipher.AEAD
}

// newTokenCipher derives the key from secret and builds the AEAD once.
func newTokenCipher(secret string) (*tokenCipher, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("session secret: need at least %d bytes, got %d", minSecretLen, len(secret))
	}
	block, err := aes.NewCipher(DeriveKey(secret, "token-at-rest", 32))
	if err != nil {
		return nil, fmt.Errorf("token cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("token cipher: %w", err)
	}
	return &tokenCipher{aead: aead}, nil
}

// seal returns nonce || ciphertext of plaintext, bound to id.
func (c *tokenCipher) seal(id string, plaintext []byte) []byte {
	ns := c.aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+c.aead.Overhead())
	rand.Read(out) // never fails (crypto/rand panics on failure)
	return c.aead.Seal(out, out, plaintext, []byte(id))
}

// errUnsealed means a sealed value failed authentication: another secret,
// another session's value, or tampering.
var errUnsealed = errors.New("tokens at rest do not decrypt (wrong secret or tampered)")

// open reverses seal.
func (c *tokenCipher) open(id string, sealed []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(sealed) < ns+c.aead.Overhead() {
		return nil, errUnsealed
	}
	p, err := c.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(id))
	if err != nil {
		return nil, errUnsealed
	}
	return p, nil
}
