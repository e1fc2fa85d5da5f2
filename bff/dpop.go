package bff

import (
	"context"
	"net/http"
	"strings"

	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/session"
)

// dpopParts are what an app with dpop = true shares between its logins,
// refreshes and proxies: the parsed session keys (so that a proxied call
// costs one signature) and the nonces its IdP and APIs handed out.
type dpopParts struct {
	keys   *dpop.Keys
	nonces *dpop.Nonces
}

func newDPoPParts() *dpopParts {
	return &dpopParts{keys: dpop.NewKeys(0, 0), nonces: dpop.NewNonces(0)}
}

// transport wraps base so that requests made under a DPoP key
// (dpop.WithKey, dpop.WithToken) carry proofs; others pass untouched.
func (d *dpopParts) transport(base http.RoundTripper) http.RoundTripper {
	return &dpop.Transport{Base: base, Nonces: d.nonces}
}

// client returns a copy of c whose requests under a DPoP key carry
// proofs.
func (d *dpopParts) client(c *http.Client) *http.Client {
	cc := *c
	cc.Transport = d.transport(c.Transport)
	return &cc
}

// isDPoP reports whether a token response's token_type says the access
// token is bound to the DPoP key.
func isDPoP(tokenType string) bool { return strings.EqualFold(tokenType, "DPoP") }

// dpopKey returns, for an app with DPoP, a new session key and ctx under
// which the token request carries its proof; otherwise ctx and nil.
func (l *loginFlow) dpopKey(ctx context.Context) (context.Context, *dpop.Key, error) {
	if !l.cfg.DPoP {
		return ctx, nil, nil
	}
	key, err := dpop.NewKey()
	if err != nil {
		return ctx, nil, err
	}
	return dpop.WithKey(ctx, key), key, nil
}

// userinfoContext returns ctx under which a userinfo call with a
// DPoP-bound accessToken carries "Authorization: DPoP" and a proof of
// key; ctx itself for a bearer token.
func userinfoContext(ctx context.Context, key *dpop.Key, tokenType, accessToken string) context.Context {
	if key == nil || !isDPoP(tokenType) {
		return ctx
	}
	return dpop.WithToken(ctx, key, accessToken)
}

// userinfoDPoP returns ctx for a userinfo call of s with its refreshed
// accessToken: under s's DPoP key if its token is bound.
func (a *app) userinfoDPoP(ctx context.Context, s *session.Session, accessToken string) context.Context {
	if a.dpop == nil || len(s.DPoPKey) == 0 {
		return ctx
	}
	key, err := a.dpop.keys.Get(s.ID, s.DPoPKey)
	if err != nil {
		return ctx // the call goes without a proof and fails
	}
	return userinfoContext(ctx, key, s.TokenType, accessToken)
}
