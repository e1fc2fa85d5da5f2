package testop

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/bffgate/bffgate/internal/dpop"
)

// DPoPProof is a DPoP proof the OP accepted at /token or /userinfo.
type DPoPProof struct {
	Endpoint  string // "token" or "userinfo"
	GrantType string // at /token
	JKT, JTI  string
	Nonce     string // the nonce the OP demanded then ("" for none)
}

// SetDPoPNonce makes /token and /userinfo demand this nonce in DPoP
// proofs ("" demands none), answering use_dpop_nonce with it in the
// DPoP-Nonce header.
func (op *OP) SetDPoPNonce(n string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.dpopNonce = n
}

// DPoPProofs returns the proofs accepted so far, oldest first.
func (op *OP) DPoPProofs() []DPoPProof {
	op.mu.Lock()
	defer op.mu.Unlock()
	return append([]DPoPProof(nil), op.dpopProofs...)
}

// DPoPNonceChallenges returns how many use_dpop_nonce errors the OP sent.
func (op *OP) DPoPNonceChallenges() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.dpopChallenges
}

// AccessTokenJKT returns the cnf.jkt an access token is bound to ("" for
// a bearer token or an unknown one), as introspection would.
func (op *OP) AccessTokenJKT(at string) string {
	op.mu.Lock()
	defer op.mu.Unlock()
	if g := op.access[at]; g != nil {
		return g.jkt
	}
	return ""
}

// checkDPoP verifies the request's DPoP proof, if it has one (with
// Config.DPoP), and returns its key's thumbprint: "" for no proof. On a
// bad proof it answers the request (use_dpop_nonce with the nonce, or
// invalid_dpop_proof) and returns ok false. accessToken is "" at /token.
// The caller holds no lock.
func (op *OP) checkDPoP(w http.ResponseWriter, r *http.Request, endpoint, accessToken string) (jkt string, ok bool) {
	if !op.cfg.DPoP || r.Header.Get("DPoP") == "" {
		return "", true
	}
	u, _ := url.Parse(op.URL + r.URL.Path)
	op.mu.Lock()
	nonce := op.dpopNonce
	op.mu.Unlock()
	p, err := op.dpopVerifier.Verify(r, u, accessToken)
	op.mu.Lock()
	defer op.mu.Unlock()
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		op.dpopChallenges++
		w.Header().Set("DPoP-Nonce", nonce)
		if endpoint == "token" {
			oauthError(w, http.StatusBadRequest, "use_dpop_nonce", "a DPoP nonce is required")
		} else {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			oauthError(w, http.StatusUnauthorized, "use_dpop_nonce", "a DPoP nonce is required")
		}
		return "", false
	case err != nil:
		status := http.StatusBadRequest
		if endpoint != "token" {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
		}
		oauthError(w, status, "invalid_dpop_proof", err.Error())
		return "", false
	}
	op.dpopProofs = append(op.dpopProofs, DPoPProof{Endpoint: endpoint, GrantType: r.PostForm.Get("grant_type"), JKT: p.JKT, JTI: p.JTI, Nonce: nonce})
	return p.JKT, true
}

// accessTokenOf returns the access token of a userinfo request and
// whether it came with the DPoP scheme.
func accessTokenOf(r *http.Request) (tok string, isDPoP, ok bool) {
	h := r.Header.Get("Authorization")
	if t, found := strings.CutPrefix(h, "DPoP "); found {
		return t, true, true
	}
	t, found := strings.CutPrefix(h, "Bearer ")
	return t, false, found
}

func (op *OP) dpopNonceNow() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.dpopNonce
}
