package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// jwtAccessTokens accepts the IdP's JWT access tokens for this API's
// resource (RFC 9068: typ at+jwt, aud the resource, signed with the IdP's
// keys), such as the gateway's client token for an API with token =
// "client" and client_resource; any other token goes to next
// (introspection).
type jwtAccessTokens struct {
	issuer, resource string
	ctx              context.Context // carries the HTTP client for discovery and JWKS
	next             tokenVerifier

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

func newJWTAccessTokens(ctx context.Context, issuer, resource string, next tokenVerifier) *jwtAccessTokens {
	return &jwtAccessTokens{issuer: issuer, resource: resource, ctx: ctx, next: next}
}

// Verify implements tokenVerifier.
func (j *jwtAccessTokens) Verify(ctx context.Context, token string) (tokenInfo, error) {
	if strings.Count(token, ".") != 2 {
		return j.next.Verify(ctx, token)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return tokenInfo{}, errInactive
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "at+jwt") {
		return tokenInfo{}, errInactive // an ID token or another JWT is not an access token
	}
	v, err := j.verifierFor(ctx)
	if err != nil {
		return tokenInfo{}, err
	}
	t, err := v.Verify(ctx, token) // iss, aud (the resource), exp, signature
	if err != nil {
		return tokenInfo{}, errInactive
	}
	var claims struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	if err := t.Claims(&claims); err != nil || claims.ClientID == "" {
		return tokenInfo{}, errInactive
	}
	return tokenInfo{Subject: t.Subject, ClientID: claims.ClientID, Scope: claims.Scope, Expiry: t.Expiry, Audience: j.resource, JWT: true}, nil
}

// verifierFor runs discovery once it succeeds.
func (j *jwtAccessTokens) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.verifier != nil {
		return j.verifier, nil
	}
	dctx, cancel := context.WithTimeout(j.ctx, 5*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, j.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	// The key set outlives this request: it fetches with j.ctx's client.
	keys := oidc.NewRemoteKeySet(j.ctx, jwksURI(p))
	j.verifier = oidc.NewVerifier(j.issuer, keys, &oidc.Config{ClientID: j.resource, SupportedSigningAlgs: []string{"RS256", "PS256", "ES256"}})
	return j.verifier, nil
}

func jwksURI(p *oidc.Provider) string {
	var m struct {
		JWKSURI string `json:"jwks_uri"`
	}
	_ = p.Claims(&m)
	return m.JWKSURI
}
