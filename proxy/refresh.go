package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

// Sessions is what the Refresher needs of the session manager
// (*session.Manager): the stored session, a claim on its refresh, a
// compare-and-set of its tokens, and ending it.
type Sessions interface {
	Get(ctx context.Context, id string) (*session.Session, error)
	ReplaceTokens(ctx context.Context, id, from string, t session.Tokens) (*session.Session, bool, error)
	ClaimRefresh(ctx context.Context, id string, ttl time.Duration) (bool, error)
	ReleaseRefresh(ctx context.Context, id string) error
	End(ctx context.Context, id string, cause session.Cause) (*session.Session, error)
}

// RefresherConfig configures a Refresher.
type RefresherConfig struct {
	// OAuth2 is the app's client configuration; its Endpoint.TokenURL is
	// used for the refresh_token grant. It may be nil at construction and
	// set later with SetOAuth2 (once OIDC discovery found the token
	// endpoint); until then, expired tokens cannot be refreshed. Its
	// Endpoint.AuthStyle says how the client authenticates (client_secret_post
	// for AuthStyleInParams, else client_secret_basic); SetTokenEndpoint
	// takes any clientauth method instead.
	OAuth2 *oauth2.Config
	// HTTPClient calls the token endpoint. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Leeway: a token expiring within it is refreshed first, or within a
	// quarter of its lifetime if that is shorter (when the session knows
	// when the token was issued), so that a short-lived token is not
	// refreshed on every call. Default 30s.
	Leeway time.Duration
	// Timeout bounds one refresh (token endpoint and store). Default 10s.
	Timeout time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Claims, if set, is called after each refresh grant with the session
	// as stored and the new access token; claims it returns (non-nil)
	// are saved with the new tokens. An error ends the session (the new
	// tokens are not the session's user's): Claims itself decides what
	// is worth that, and returns nil, nil to keep the claims.
	Claims func(ctx context.Context, s *session.Session, accessToken string) (json.RawMessage, error)
	// DPoPKeys, when set, parses the DPoP keys of sessions that have one
	// (session.Session.DPoPKey): their refresh grants then carry a proof
	// (dpop.WithKey), which HTTPClient's transport (a dpop.Transport)
	// signs. Nil: refreshes carry no proof.
	DPoPKeys *dpop.Keys
	// Check, when set, vets the tokens of every refresh grant (a
	// profile's rules, e.g. FAPI 2.0's DPoP binding and lifetime); an
	// error ends the session, as a refused grant does, and nothing of
	// the refused tokens is stored.
	Check func(tokenType string, issued, expiry time.Time) error
}

// Refresher is the TokenSource used in production: it returns the
// session's access token, refreshing it with the refresh_token grant
// shortly before it expires.
//
// Concurrent requests of one session in this process share one refresh
// (a singleflight group keyed by session id); replicas sharing the store
// share one through a claim in the store (session.Manager.ClaimRefresh):
// the others wait for the tokens it saves. A refresh starts from the
// stored session, not the request's copy, which may predate a refresh by
// another request or replica: if the stored tokens are fresh, they are
// used as they are. New tokens are saved with a compare-and-set on the
// refresh token the refresh started from (session.Manager.ReplaceTokens),
// so a stale copy never writes an old refresh token over a rotated one,
// and a refresh token rejected because another writer rotated it ends
// nothing.
type Refresher struct {
	cfg      RefresherConfig
	endpoint atomic.Pointer[grantEndpoint]
	sessions Sessions
	logger   *slog.Logger
	group    singleflight.Group
}

// errNoTokenEndpoint means the app's token endpoint is not known yet
// (OIDC discovery has not succeeded): a transient failure.
var errNoTokenEndpoint = errors.New("token endpoint not known yet: oidc discovery not done")

// tokens is what a refresh yields.
type tokens struct {
	access, refresh string
	tokenType       string
	expiry, issued  time.Time
	claims          json.RawMessage // new claims (RefresherConfig.Claims), or nil
}

func storedTokens(s *session.Session) tokens {
	return tokens{access: s.AccessToken, refresh: s.RefreshToken, tokenType: s.TokenType, expiry: s.TokenExpiry, issued: s.TokenIssued}
}

// NewRefresher returns a Refresher that reads, saves and ends sessions
// with sessions. A nil logger discards.
func NewRefresher(cfg RefresherConfig, sessions Sessions, logger *slog.Logger) *Refresher {
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Refresher{cfg: cfg, sessions: sessions, logger: logger}
	r.SetOAuth2(cfg.OAuth2)
	return r
}

// grantEndpoint is where and as whom refresh grants run.
type grantEndpoint struct {
	url  string
	auth *clientauth.Client
}

// SetOAuth2 sets the client configuration used for refreshes, such as
// once discovery found the token endpoint. It is safe to call at any
// time.
func (r *Refresher) SetOAuth2(c *oauth2.Config) {
	if c == nil {
		r.endpoint.Store(nil)
		return
	}
	method := clientauth.SecretBasic
	if c.Endpoint.AuthStyle == oauth2.AuthStyleInParams {
		method = clientauth.SecretPost
	}
	r.SetTokenEndpoint(c.Endpoint.TokenURL, &clientauth.Client{ID: c.ClientID, Secret: c.ClientSecret, Method: method})
}

// SetTokenEndpoint sets the token endpoint and the client authentication
// of refreshes, such as once discovery found them. It is safe to call at
// any time.
func (r *Refresher) SetTokenEndpoint(tokenURL string, auth *clientauth.Client) {
	r.endpoint.Store(&grantEndpoint{url: tokenURL, auth: auth})
}

// AccessToken returns s's access token if it is valid for longer than
// the leeway (a zero TokenExpiry means it does not expire). Otherwise it
// refreshes it, saves the session, and updates s's token fields in place;
// s must be the caller's own copy, as session.Manager hands out.
//
// If the token cannot be refreshed — no refresh token, or the token
// endpoint rejects the grant (a 4xx such as invalid_grant) and the stored
// refresh token is still the one rejected — the session is ended with
// session.CauseRefreshFailed and the error wraps ErrSessionEnded; so does
// a session already gone. Transient failures (the token endpoint unknown,
// unreachable or answering 5xx, the store failing) return another error
// and leave the session alone: the next request tries again.
func (r *Refresher) AccessToken(ctx context.Context, s *session.Session) (string, error) {
	if r.usable(s) {
		return s.AccessToken, nil // the hot path
	}
	id, seen := s.ID, s.AccessToken
	ch := r.group.DoChan(id, func() (any, error) {
		// Detached from the caller that happened to start the flight, so
		// its cancellation does not fail the others waiting for it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
		defer cancel()
		return r.refresh(ctx, id, seen)
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		t := res.Val.(tokens)
		s.AccessToken, s.RefreshToken, s.TokenExpiry, s.TokenIssued, s.TokenType = t.access, t.refresh, t.expiry, t.issued, t.tokenType
		if t.claims != nil {
			s.Claims = slices.Clone(t.claims)
		}
		return t.access, nil
	}
}

// fresh reports whether a token issued then (zero: unknown) and expiring
// at expiry (zero: never) is valid for longer than its refresh margin.
func (r *Refresher) fresh(issued, expiry time.Time) bool {
	return expiry.IsZero() || r.cfg.Now().Add(r.margin(issued, expiry)).Before(expiry)
}

// margin is how long before its expiry a token is refreshed: the
// leeway, or a quarter of the token's lifetime if that is shorter.
func (r *Refresher) margin(issued, expiry time.Time) time.Duration {
	m := r.cfg.Leeway
	if !issued.IsZero() && expiry.After(issued) {
		m = min(m, expiry.Sub(issued)/4)
	}
	return m
}

func (r *Refresher) usable(s *session.Session) bool {
	return s.AccessToken != "" && r.fresh(s.TokenIssued, s.TokenExpiry)
}

// claimPoll is how often a refresh that another replica (or an earlier
// flight) has claimed checks the store for its outcome.
const claimPoll = 20 * time.Millisecond

// The two outcomes of a refresh round that call for another round:
// another replica holds the claim (look again after claimPoll), or
// another writer replaced the tokens since they were read (look again at
// once).
var (
	errClaimHeld   = errors.New("another replica holds the refresh claim")
	errTokensMoved = backoff.RetryAfter(0)
)

// refresh runs once per flight, for a caller whose copy of the session
// had the access token seen. It returns the stored tokens if another
// request or replica refreshed them already. Otherwise it claims the
// refresh (session.Manager.ClaimRefresh), so that the replicas sharing
// the session make one grant between them, refreshes the tokens and
// saves them with a compare-and-set; or, if another replica holds the
// claim, waits for the tokens it saves, polling the store until ctx
// ends. It ends the session only if the IdP rejects the refresh token
// that is still stored.
func (r *Refresher) refresh(ctx context.Context, id, seen string) (_ tokens, err error) {
	ctx, span := spans.Start(ctx, tracerName, "oidc.refresh")
	defer func() { spans.End(span, err) }()
	waiting := false
	t, err := backoff.Retry(ctx, func() (tokens, error) {
		t, err := r.round(ctx, id, seen)
		waiting = err == errClaimHeld
		if err != nil && !waiting && err != errTokensMoved {
			err = backoff.Permanent(err)
		}
		return t, err
	}, backoff.WithBackOff(backoff.NewConstantBackOff(claimPoll)), backoff.WithMaxElapsedTime(0))
	if err != nil && waiting { // ctx ended while another replica refreshed
		return tokens{}, fmt.Errorf("refresh access token: waiting for another replica's refresh: %w", err)
	}
	return t, err
}

// round is one attempt of refresh: errClaimHeld and errTokensMoved ask
// for another; any other error is final.
func (r *Refresher) round(ctx context.Context, id, seen string) (tokens, error) {
	cur, err := r.stored(ctx, id)
	if err != nil {
		return tokens{}, err
	}
	if r.newer(cur, seen) {
		return storedTokens(cur), nil
	}
	claimed, err := r.sessions.ClaimRefresh(ctx, id, r.cfg.Timeout)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return tokens{}, fmt.Errorf("refresh access token: %w", ErrSessionEnded)
	case err != nil:
		return tokens{}, fmt.Errorf("refresh access token: claim: %w", err)
	case !claimed:
		return tokens{}, errClaimHeld
	}
	// The claim is on the tokens stored now, which another replica
	// may have replaced since they were read.
	if cur, err = r.stored(ctx, id); err != nil {
		r.release(ctx, id)
		return tokens{}, err
	}
	if r.newer(cur, seen) {
		r.release(ctx, id)
		return storedTokens(cur), nil
	}
	from := cur.RefreshToken
	if from == "" {
		return tokens{}, r.end(ctx, cur, errors.New("access token expired and there is no refresh token"))
	}
	t, err := r.grant(ctx, cur, from)
	if rejected(err) {
		// Rejected because another writer rotated the token after it
		// was read? Then its tokens are the session's.
		now, gerr := r.stored(ctx, id)
		if gerr != nil {
			r.release(ctx, id)
			return tokens{}, gerr
		}
		if now.RefreshToken == from {
			return tokens{}, r.end(ctx, now, err)
		}
		return tokens{}, errTokensMoved
	}
	if err != nil {
		r.release(ctx, id)
		return tokens{}, err
	}
	if r.cfg.Check != nil {
		if err := r.cfg.Check(t.tokenType, t.issued, t.expiry); err != nil {
			return tokens{}, r.end(ctx, cur, err)
		}
	}
	if r.cfg.Claims != nil {
		if t.claims, err = r.cfg.Claims(ctx, cur, t.access); err != nil {
			return tokens{}, r.end(ctx, cur, err)
		}
	}
	_, ok, err := r.sessions.ReplaceTokens(ctx, id, from,
		session.Tokens{AccessToken: t.access, RefreshToken: t.refresh, Expiry: t.expiry, Issued: t.issued, Claims: t.claims, TokenType: t.tokenType})
	switch {
	case errors.Is(err, session.ErrNotFound):
		return tokens{}, fmt.Errorf("save refreshed tokens: %w", ErrSessionEnded) // ended meanwhile, e.g. by a logout
	case err != nil:
		r.release(ctx, id)
		return tokens{}, fmt.Errorf("save refreshed tokens: %w", err)
	case !ok:
		// Another writer replaced the tokens first: the next round uses
		// its tokens.
		return tokens{}, errTokensMoved
	}
	// The claim covers the refresh token it was taken on; an IdP that
	// does not rotate refresh tokens leaves it unchanged, so the claim
	// would hold back the next refresh until it lapsed.
	r.release(ctx, id)
	return t, nil
}

// newer reports whether the stored session s has tokens the caller can
// use instead of refreshing: fresh ones, or ones that replaced the
// caller's access token seen (a refresh by another request or replica)
// and have not expired, even if they are due within the leeway.
func (r *Refresher) newer(s *session.Session, seen string) bool {
	if r.usable(s) {
		return true
	}
	return s.AccessToken != "" && s.AccessToken != seen &&
		(s.TokenExpiry.IsZero() || r.cfg.Now().Before(s.TokenExpiry))
}

// release drops the refresh claim after a refresh or a transient
// failure, so that the next refresh starts at once rather than wait for
// the claim to lapse.
func (r *Refresher) release(ctx context.Context, id string) {
	if err := r.sessions.ReleaseRefresh(ctx, id); err != nil {
		r.logger.WarnContext(ctx, "release token refresh claim", "err", err)
	}
}

// stored reads the session as stored; a session gone is ErrSessionEnded.
func (r *Refresher) stored(ctx context.Context, id string) (*session.Session, error) {
	s, err := r.sessions.Get(ctx, id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, fmt.Errorf("refresh access token: %w", ErrSessionEnded)
	case err != nil:
		return nil, fmt.Errorf("refresh access token: read session: %w", err)
	}
	return s, nil
}

// grant runs the refresh_token grant of s with refreshToken, with a
// DPoP proof of s's key if it has one.
func (r *Refresher) grant(ctx context.Context, s *session.Session, refreshToken string) (tokens, error) {
	te := r.endpoint.Load()
	if te == nil {
		return tokens{}, errNoTokenEndpoint
	}
	if len(s.DPoPKey) > 0 && r.cfg.DPoPKeys != nil {
		key, err := r.cfg.DPoPKeys.Get(s.ID, s.DPoPKey)
		if err != nil {
			return tokens{}, fmt.Errorf("refresh access token: %w", err)
		}
		// A nonce retry carries a new private_key_jwt assertion.
		ctx = dpop.WithFormRefresh(dpop.WithKey(ctx, key), te.auth.RefreshAssertion)
	}
	if r.cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, r.cfg.HTTPClient)
	}
	issued := r.cfg.Now()
	tok, err := te.auth.Refresh(ctx, te.url, refreshToken)
	if err != nil {
		return tokens{}, fmt.Errorf("refresh access token: %w", err)
	}
	t := tokens{access: tok.AccessToken, refresh: tok.RefreshToken, tokenType: tok.TokenType, expiry: tok.Expiry, issued: issued}
	if t.refresh == "" {
		t.refresh = refreshToken // the IdP did not rotate it
	}
	return t, nil
}

// rejected reports whether the token endpoint refused the grant, so that
// trying again cannot help: an OAuth error response with a 4xx status.
func rejected(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.Response != nil &&
		re.Response.StatusCode >= 400 && re.Response.StatusCode < 500
}

// end ends s because its tokens cannot be refreshed (why) and returns the
// error wrapping ErrSessionEnded for the caller.
func (r *Refresher) end(ctx context.Context, s *session.Session, why error) error {
	attrs := []any{"app", s.App, "sid_hash", session.Hash(s.SID), "reason", why}
	if _, err := r.sessions.End(ctx, s.ID, session.CauseRefreshFailed); err != nil && !errors.Is(err, session.ErrNotFound) {
		r.logger.ErrorContext(ctx, "end session after failed token refresh", append(attrs, "err", err)...)
	} else {
		r.logger.InfoContext(ctx, "session ended: token refresh failed", attrs...)
	}
	return fmt.Errorf("refresh access token: %w", ErrSessionEnded)
}
