package testop

import (
	"crypto"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client authentication methods (OpenID Connect Core §9).
const (
	SecretBasic   = "client_secret_basic"
	SecretPost    = "client_secret_post"
	PrivateKeyJWT = "private_key_jwt"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLife is the longest exp - now accepted for an assertion.
const maxAssertionLife = 5 * time.Minute

// SetClientAuth registers the only method a client may authenticate
// with, and for private_key_jwt its public key. Clients without one
// may use client_secret_basic or client_secret_post.
func (op *OP) SetClientAuth(clientID, method string, key crypto.PublicKey) {
	op.mu.Lock()
	defer op.mu.Unlock()
	c := op.clients[clientID]
	c.method, c.key = method, key
}

// TokenCalls counts every request to the token endpoint, answered or not.
func (op *OP) TokenCalls() int { return int(op.tokenCalls.Load()) }

// ClientAuthFailures returns why each failed client authentication
// failed ("token: aud …", "revoke: wrong method …"), in order.
func (op *OP) ClientAuthFailures() []string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.authFailures)
}

// ClientAuthMethods returns "endpoint method" for every successful client
// authentication, in order ("token client_secret_post", "revoke private_key_jwt").
func (op *OP) ClientAuthMethods() []string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.authMethods)
}

// clientAuth authenticates the client of a token or revocation request
// (endpoint names it) and returns its id, or "" after answering 401.
func (op *OP) clientAuth(w http.ResponseWriter, r *http.Request, endpoint string) string {
	id, method, err := op.authenticate(r)
	op.mu.Lock()
	if err != nil {
		op.authFailures = append(op.authFailures, endpoint+": "+err.Error())
	} else {
		op.authMethods = append(op.authMethods, endpoint+" "+method)
	}
	op.mu.Unlock()
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return ""
	}
	return id
}

// authenticate checks the one method the request uses.
func (op *OP) authenticate(r *http.Request) (id, method string, err error) {
	f := r.PostForm
	bid, bsecret, basic := r.BasicAuth()
	assertion := f.Get("client_assertion")
	switch {
	case basic && (f.Has("client_secret") || assertion != ""):
		return "", "", fmt.Errorf("more than one method")
	case basic: // RFC 6749 §2.3.1: form-urlencoded inside Basic
		id, _ = url.QueryUnescape(bid)
		secret, _ := url.QueryUnescape(bsecret)
		return id, SecretBasic, op.checkSecret(id, SecretBasic, secret)
	case assertion != "" && f.Has("client_secret"):
		return "", "", fmt.Errorf("more than one method")
	case assertion != "":
		id, err = op.checkAssertion(r, f.Get("client_assertion_type"), assertion, f.Get("client_id"))
		return id, PrivateKeyJWT, err
	default:
		id = f.Get("client_id")
		return id, SecretPost, op.checkSecret(id, SecretPost, f.Get("client_secret"))
	}
}

func (op *OP) checkSecret(id, method, secret string) error {
	op.mu.Lock()
	c := op.clients[id]
	op.mu.Unlock()
	switch {
	case c == nil:
		return fmt.Errorf("unknown client %q", id)
	case c.method != "" && c.method != method:
		return fmt.Errorf("wrong method %s, registered %s", method, c.method)
	case subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1:
		return fmt.Errorf("wrong secret")
	}
	return nil
}

// checkAssertion verifies a private_key_jwt assertion (RFC 7523 §3):
// signature by the client's registered key, iss = sub = client_id, aud
// the issuer identifier (OpenID Connect Core §9, errata set 2), an exp
// no more than maxAssertionLife ahead, and a jti never seen before.
func (op *OP) checkAssertion(r *http.Request, typ, assertion, formID string) (string, error) {
	if typ != assertionType {
		return "", fmt.Errorf("client_assertion_type %q", typ)
	}
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	})
	if err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return "", fmt.Errorf("assertion claims: %w", err)
	}
	id := unverified.Issuer
	op.mu.Lock()
	c := op.clients[id]
	op.mu.Unlock()
	switch {
	case c == nil:
		return "", fmt.Errorf("unknown client %q", id)
	case c.method != PrivateKeyJWT || c.key == nil:
		return "", fmt.Errorf("wrong method %s, registered %s", PrivateKeyJWT, c.method)
	case formID != "" && formID != id:
		return "", fmt.Errorf("client_id %q is not the assertion's iss %q", formID, id)
	}
	var claims jwt.Claims
	if err := tok.Claims(c.key, &claims); err != nil {
		return "", fmt.Errorf("assertion signature: %w", err)
	}
	now := time.Now()
	switch {
	case claims.Subject != id:
		return "", fmt.Errorf("assertion sub %q is not iss %q", claims.Subject, id)
	case len(claims.Audience) != 1 || claims.Audience[0] != op.URL:
		return "", fmt.Errorf("assertion aud %v is not the issuer %s", claims.Audience, op.URL)
	case claims.Expiry == nil:
		return "", fmt.Errorf("assertion without exp")
	case !now.Before(claims.Expiry.Time()):
		return "", fmt.Errorf("assertion expired")
	case claims.Expiry.Time().Sub(now) > maxAssertionLife:
		return "", fmt.Errorf("assertion exp too far ahead: %s", claims.Expiry.Time().Sub(now))
	case claims.ID == "":
		return "", fmt.Errorf("assertion without jti")
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.assertionJTIs[id+" "+claims.ID] {
		return "", fmt.Errorf("assertion jti replayed")
	}
	op.assertionJTIs[id+" "+claims.ID] = true
	return id, nil
}
