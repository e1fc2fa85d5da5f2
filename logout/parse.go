package logout

import (
	"encoding/json"
	"errors"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// parsed is a raw logout token parsed once with go-jose: a compact JWE
// (four dots) or a compact JWS (anything else), plus its claims decoded
// once from the JWS payload. The claims are trusted only after the
// signature verified; before that the Service reads iss and aud from
// them only to pick the verifiers to run.
type parsed struct {
	tooLarge  bool
	encrypted bool // four dots: a compact JWE
	plain     bool // two dots: a compact JWS

	jwe    *jose.JSONWebEncryption
	jweErr error
	jws    *jose.JSONWebSignature
	jwsErr *ValidationError

	claims    map[string]json.RawMessage // decoded from jws's payload
	claimsErr error
	decoded   bool
}

// Accepted JWE algorithms: no RSA1_5 (padding oracle), no PBES2, no dir.
var (
	keyAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP, jose.RSA_OAEP_256,
		jose.ECDH_ES, jose.ECDH_ES_A128KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A256KW}
	contentEncs = []jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM,
		jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512}
)

// asymmetricJOSE are the asymmetric JWS algorithms a KeySet verifies.
var asymmetricJOSE = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(asymmetricAlgs))
	for i, a := range asymmetricAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// parse parses raw once: as a JWE if it has the JWE's five parts, else as
// a JWS accepting only algs.
func parse(raw string, algs []jose.SignatureAlgorithm) *parsed {
	if len(raw) > MaxTokenSize {
		return &parsed{tooLarge: true}
	}
	dots := strings.Count(raw, ".")
	p := &parsed{encrypted: dots == 4, plain: dots == 2}
	if p.encrypted {
		p.jwe, p.jweErr = jose.ParseEncryptedCompact(raw, keyAlgs, contentEncs)
		return p
	}
	p.jws, p.jwsErr = parseJWS(raw, algs)
	return p
}

// parseJWS parses a compact JWS whose alg is one of algs, naming the
// reason of a failure: alg for none or another algorithm (go-jose pins
// it), malformed for anything else.
func parseJWS(raw string, algs []jose.SignatureAlgorithm) (*jose.JSONWebSignature, *ValidationError) {
	jws, err := jose.ParseSignedCompact(raw, algs)
	var ua *jose.ErrUnexpectedSignatureAlgorithm
	switch {
	case errors.As(err, &ua) && ua.Got == "":
		return nil, invalid(ReasonMalformed, "the logout token's alg header is missing", err)
	case errors.As(err, &ua) && strings.EqualFold(string(ua.Got), "none"):
		return nil, invalid(ReasonAlg, "unsigned logout tokens (alg none) are not accepted", nil)
	case errors.As(err, &ua):
		return nil, invalid(ReasonAlg, "the logout token's signing algorithm is not the one expected", nil)
	case err != nil:
		return nil, invalid(ReasonMalformed, "the logout token is not a compact JWS", err)
	case len(jws.Signatures) != 1:
		return nil, invalid(ReasonMalformed, "the logout token is not a compact JWS", nil)
	}
	return jws, nil
}

// claimsOf returns the claims of jws, decoded once for the token's own
// JWS (a decrypted JWE's nested JWS differs per verifier).
func (p *parsed) claimsOf(jws *jose.JSONWebSignature) (map[string]json.RawMessage, error) {
	if jws != p.jws {
		return decodeClaims(jws)
	}
	if !p.decoded {
		p.claims, p.claimsErr = decodeClaims(jws)
		p.decoded = true
	}
	return p.claims, p.claimsErr
}

func decodeClaims(jws *jose.JSONWebSignature) (map[string]json.RawMessage, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("claims are null")
	}
	return c, nil
}
