package dpop

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Verifier checks DPoP proofs the way a server must (RFC 9449 §4.3):
// one DPoP header, typ dpop+jwt, an asymmetric alg, the signature under
// the jwk header's public key (no private key in it), htm and htu of the
// request, iat within Window, a jti not seen before (within Window), ath
// of the access token when there is one, and the server's nonce when
// Nonce says one is required. It is for test servers and the demo API.
type Verifier struct {
	Window time.Duration // iat and replay window; default 60s
	// Nonce, when set, returns the nonce a proof must carry ("" for
	// none).
	Nonce func() string
	Now   func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
}

// Errors a caller tells apart.
var (
	// ErrUseNonce means the proof lacks the server's current nonce.
	ErrUseNonce = errors.New("use_dpop_nonce")
	// ErrReplay means the proof's jti was used before.
	ErrReplay = errors.New("dpop proof replayed")
)

// Proof is a verified proof.
type Proof struct {
	JKT string // the thumbprint of its key
	JTI string
}

// Verify checks r's DPoP proof for a request to u (the server's own view
// of its URL); accessToken is "" at a token endpoint.
func (v *Verifier) Verify(r *http.Request, u *url.URL, accessToken string) (Proof, error) {
	vals := r.Header.Values("DPoP")
	if len(vals) != 1 {
		return Proof{}, fmt.Errorf("want one DPoP header, got %d", len(vals))
	}
	jws, err := jose.ParseSigned(vals[0], []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.PS256, jose.RS256, jose.EdDSA})
	if err != nil {
		return Proof{}, fmt.Errorf("parse proof: %w", err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != ProofType {
		return Proof{}, fmt.Errorf("typ %q", typ)
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return Proof{}, errors.New("no public jwk header")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return Proof{}, fmt.Errorf("proof signature: %w", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Proof{}, fmt.Errorf("proof claims: %w", err)
	}
	if c.HTM != r.Method {
		return Proof{}, fmt.Errorf("htm %q, want %q", c.HTM, r.Method)
	}
	if want := HTU(u); c.HTU != want {
		return Proof{}, fmt.Errorf("htu %q, want %q", c.HTU, want)
	}
	now, window := time.Now(), v.Window
	if v.Now != nil {
		now = v.Now()
	}
	if window <= 0 {
		window = time.Minute
	}
	if d := now.Sub(time.Unix(c.IAT, 0)); d > window || d < -window {
		return Proof{}, fmt.Errorf("iat %d out of window", c.IAT)
	}
	if accessToken != "" && c.ATH != ATH(accessToken) {
		return Proof{}, errors.New("ath does not match the access token")
	}
	if v.Nonce != nil {
		if want := v.Nonce(); want != "" && c.Nonce != want {
			return Proof{}, ErrUseNonce
		}
	}
	if c.JTI == "" {
		return Proof{}, errors.New("no jti")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = make(map[string]time.Time)
	}
	for k, at := range v.seen {
		if now.Sub(at) > 2*window {
			delete(v.seen, k)
		}
	}
	if _, dup := v.seen[c.JTI]; dup {
		return Proof{}, ErrReplay
	}
	v.seen[c.JTI] = now
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return Proof{}, err
	}
	return Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI}, nil
}
