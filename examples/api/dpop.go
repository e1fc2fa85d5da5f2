package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/bffgate/bffgate/internal/dpop"
)

// proofs checks the DPoP proofs (RFC 9449 §4.3, §7) of the requests
// with DPoP-bound tokens: signature under the proof's own key, htm, htu,
// iat within a minute, ath of the token, and no jti seen before.
var proofs dpop.Verifier

// errDPoP is a DPoP-bound token without a valid proof of its key, or a
// DPoP proof for a token that is not bound.
var errDPoP = errors.New("invalid dpop proof")

// checkDPoP checks that a token bound to a key (tok.JKT) came with the
// DPoP scheme and a valid proof of that key; a bound token presented as
// a bearer is refused (RFC 9449 §7.2), and so is a bearer token with
// the DPoP scheme.
func checkDPoP(r *http.Request, scheme, raw string, tok tokenInfo) error {
	switch {
	case tok.JKT == "" && scheme == "bearer":
		return nil
	case tok.JKT == "":
		return fmt.Errorf("%w: the token is not DPoP-bound", errDPoP)
	case scheme != "dpop":
		return fmt.Errorf("%w: a DPoP-bound token needs the DPoP scheme and a proof", errDPoP)
	}
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	p, err := proofs.Verify(r, u, raw)
	if err != nil {
		return fmt.Errorf("%w: %v", errDPoP, err)
	}
	if p.JKT != tok.JKT {
		return fmt.Errorf("%w: the proof's key is not the token's", errDPoP)
	}
	return nil
}

func dpopUnauthorized(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof", algs="ES256"`)
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_dpop_proof", "error_description": err.Error()})
}
