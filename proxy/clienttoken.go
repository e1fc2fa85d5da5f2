package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/session"
)

// ClientTokenSource returns the access token the gateway holds for
// itself for one API (token "client" and "user_or_client").
type ClientTokenSource interface {
	ClientToken(ctx context.Context) (string, error)
}

// ClientTokenStore shares client tokens between the replicas
// (*session.RedisClientTokens): the token under a key, and a claim on
// fetching the next one so that the replicas make one grant between them.
type ClientTokenStore interface {
	GetClientToken(ctx context.Context, key string) (session.ClientToken, bool, error)
	PutClientToken(ctx context.Context, key string, t session.ClientToken) error
	ClaimClientToken(ctx context.Context, key string, ttl time.Duration) (bool, error)
	ReleaseClientToken(ctx context.Context, key string) error
}

// ClientTokensConfig configures an app's ClientTokens.
type ClientTokensConfig struct {
	// Issuer and ClientID name the client; with a grant's parameters they
	// make the key its token is shared under.
	Issuer, ClientID string
	// HTTPClient calls the token endpoint. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Leeway: a token expiring within it is replaced first, or within a
	// quarter of its lifetime if that is shorter. Default 30s.
	Leeway time.Duration
	// Timeout bounds one grant, including waiting for another replica's.
	// Default 10s.
	Timeout time.Duration
	// Lifetime is how long a token the IdP gave without expires_in is
	// used. Default 5m.
	Lifetime time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Store shares the tokens between replicas; nil keeps them in this
	// process (the memory session store).
	Store ClientTokenStore
	// Observe, if set, is told the outcome of each grant: "ok",
	// "refused" (the IdP answered 4xx) or "failed" (unreachable, 5xx,
	// no token endpoint yet, a bad answer).
	Observe func(result string)
}

// ClientTokens obtains an app's client tokens with the
// client-credentials grant (RFC 6749 §4.4, through x/oauth2's
// clientcredentials and the app's client authentication), one per set of
// grant parameters (ClientGrant), and keeps each until shortly before it
// expires. The requests of a process that need a new token share one
// grant (singleflight); with a Store, so do the replicas: the one that
// claims the key fetches and stores the token, the others wait for it.
type ClientTokens struct {
	cfg      ClientTokensConfig
	endpoint atomic.Pointer[grantEndpoint]
	logger   *slog.Logger
	group    singleflight.Group

	mu     sync.Mutex
	grants map[string]*clientGrant // by key: equal grants share their token
}

// NewClientTokens returns an app's client-token source; its token
// endpoint is set with SetTokenEndpoint once discovery found it. A nil
// logger discards.
func NewClientTokens(cfg ClientTokensConfig, logger *slog.Logger) *ClientTokens {
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ClientTokens{cfg: cfg, logger: logger}
}

// SetTokenEndpoint sets the token endpoint and the client authentication
// of the grants. It is safe to call at any time.
func (c *ClientTokens) SetTokenEndpoint(tokenURL string, auth *clientauth.Client) {
	c.endpoint.Store(&grantEndpoint{url: tokenURL, auth: auth})
}

// ClientGrant is what one API's client token is asked for.
type ClientGrant struct {
	Scopes []string
	// Audience is sent as the audience parameter (Auth0, Okta and
	// others), Resource as RFC 8707's resource; empty: not sent.
	Audience, Resource string
}

// For returns the token source of one grant; equal grants (the same
// scopes in any order, audience and resource) share one token.
func (c *ClientTokens) For(g ClientGrant) ClientTokenSource {
	g.Scopes = slices.Clone(g.Scopes)
	h := sha256.New()
	for _, v := range []string{c.cfg.Issuer, c.cfg.ClientID, strings.Join(slices.Sorted(slices.Values(g.Scopes)), " "), g.Audience, g.Resource} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil)[:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.grants[key]; ok {
		return s
	}
	if c.grants == nil {
		c.grants = map[string]*clientGrant{}
	}
	s := &clientGrant{c: c, g: g, key: key}
	c.grants[key] = s
	return s
}

// clientGrant is the ClientTokenSource of one ClientGrant.
type clientGrant struct {
	c   *ClientTokens
	g   ClientGrant
	key string
	// cur is the token this process last obtained (nil: none yet).
	cur atomic.Pointer[session.ClientToken]
}

// ClientToken returns the grant's token, obtaining a new one when the
// one held expires within the margin. If that fails while the token
// held is still valid, it is used.
func (s *clientGrant) ClientToken(ctx context.Context) (string, error) {
	cur := s.cur.Load()
	if cur != nil && s.c.fresh(*cur) {
		return cur.AccessToken, nil // the hot path
	}
	seen := ""
	if cur != nil {
		seen = cur.AccessToken
	}
	ch := s.c.group.DoChan(s.key, func() (any, error) {
		// Detached from the caller that started the flight, so that its
		// cancellation does not fail the others waiting for it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.c.cfg.Timeout)
		defer cancel()
		t, err := s.obtain(ctx, seen)
		if err != nil {
			return nil, err
		}
		s.cur.Store(&t)
		return t.AccessToken, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err == nil {
			return res.Val.(string), nil
		}
		if cur != nil && s.c.cfg.Now().Before(cur.Expiry) {
			s.c.logger.WarnContext(ctx, "client token: using the current token until it expires", "err", res.Err)
			return cur.AccessToken, nil
		}
		return "", res.Err
	}
}

// fresh reports whether t is valid for longer than its margin: the
// leeway, or a quarter of its lifetime if that is shorter.
func (c *ClientTokens) fresh(t session.ClientToken) bool {
	m := c.cfg.Leeway
	if !t.Issued.IsZero() && t.Expiry.After(t.Issued) {
		m = min(m, t.Expiry.Sub(t.Issued)/4)
	}
	return t.AccessToken != "" && c.cfg.Now().Add(m).Before(t.Expiry)
}

// usable reports whether t, found in the store, can be used instead of
// a grant: fresh, or another replica's newer token (not the one seen)
// that has not expired.
func (c *ClientTokens) usable(t session.ClientToken, seen string) bool {
	return c.fresh(t) || (t.AccessToken != "" && t.AccessToken != seen && c.cfg.Now().Before(t.Expiry))
}

// obtain runs once per flight: without a store, a grant; with one, the
// token another replica stored, or a grant under the key's claim.
func (s *clientGrant) obtain(ctx context.Context, seen string) (session.ClientToken, error) {
	st := s.c.cfg.Store
	if st == nil {
		return s.grant(ctx)
	}
	waiting := false
	t, err := backoff.Retry(ctx, func() (session.ClientToken, error) {
		t, err := s.round(ctx, st, seen)
		waiting = err == errClaimHeld
		if err != nil && !waiting {
			err = backoff.Permanent(err)
		}
		return t, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(claimPoll)), backoff.WithMaxElapsedTime(0))
	if err != nil && waiting {
		return t, fmt.Errorf("client token: waiting for another replica's grant: %w", err)
	}
	return t, err
}

// errStoreDown marks a store failure, after which the grant is made
// without sharing it.
var errStoreDown = errors.New("client token store failed")

// round is one attempt of obtain; errClaimHeld asks for another.
func (s *clientGrant) round(ctx context.Context, st ClientTokenStore, seen string) (session.ClientToken, error) {
	t, ok, err := st.GetClientToken(ctx, s.key)
	if err != nil {
		return s.unshared(ctx, err)
	}
	if ok && s.c.usable(t, seen) {
		return t, nil
	}
	claimed, err := st.ClaimClientToken(ctx, s.key, s.c.cfg.Timeout)
	switch {
	case err != nil:
		return s.unshared(ctx, err)
	case !claimed:
		return session.ClientToken{}, errClaimHeld
	}
	defer func() {
		if err := st.ReleaseClientToken(context.WithoutCancel(ctx), s.key); err != nil {
			s.c.logger.WarnContext(ctx, "release client token claim", "err", err)
		}
	}()
	// Another replica may have stored a token between the read and the claim.
	if t, ok, err := st.GetClientToken(ctx, s.key); err == nil && ok && s.c.usable(t, seen) {
		return t, nil
	}
	t, err = s.grant(ctx)
	if err != nil {
		return t, err
	}
	if err := st.PutClientToken(ctx, s.key, t); err != nil {
		s.c.logger.WarnContext(ctx, "store client token", "err", err)
	}
	return t, nil
}

// unshared makes the grant for this process alone when the store fails:
// the API keeps working, at the cost of one grant per replica.
func (s *clientGrant) unshared(ctx context.Context, storeErr error) (session.ClientToken, error) {
	s.c.logger.WarnContext(ctx, "client token store failed: grant for this replica alone", "err", fmt.Errorf("%w: %w", errStoreDown, storeErr))
	return s.grant(ctx)
}

// grant runs the client-credentials grant.
func (s *clientGrant) grant(ctx context.Context) (session.ClientToken, error) {
	te := s.c.endpoint.Load()
	if te == nil {
		s.c.observe(errNoTokenEndpoint)
		return session.ClientToken{}, errNoTokenEndpoint
	}
	if s.c.cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, s.c.cfg.HTTPClient)
	}
	extra := url.Values{}
	if s.g.Audience != "" {
		extra.Set("audience", s.g.Audience)
	}
	if s.g.Resource != "" {
		extra.Set("resource", s.g.Resource)
	}
	issued := s.c.cfg.Now()
	tok, err := te.auth.ClientCredentials(ctx, te.url, s.g.Scopes, extra)
	if err == nil && tok.AccessToken == "" {
		err = errors.New("no access_token in the answer")
	}
	s.c.observe(err)
	if err != nil {
		return session.ClientToken{}, fmt.Errorf("client credentials grant: %w", err)
	}
	expiry := tok.Expiry
	if expiry.IsZero() {
		expiry = issued.Add(s.c.cfg.Lifetime)
	} else {
		// x/oauth2 counts expires_in from its own clock: rebase it on Now.
		expiry = issued.Add(time.Until(tok.Expiry).Round(time.Second))
	}
	return session.ClientToken{AccessToken: tok.AccessToken, Expiry: expiry, Issued: issued}, nil
}

// observe reports a grant's outcome to Config.Observe.
func (c *ClientTokens) observe(err error) {
	switch {
	case c.cfg.Observe == nil:
	case err == nil:
		c.cfg.Observe("ok")
	case rejected(err):
		c.cfg.Observe("refused")
	default:
		c.cfg.Observe("failed")
	}
}
