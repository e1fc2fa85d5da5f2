package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/bffgate/bffgate/session"
)

// SessionUpdater saves a session's new tokens (session.Store.Update). It
// returns session.ErrNotFound if the session is gone.
type SessionUpdater interface {
	Update(ctx context.Context, s *session.Session) error
}

// SessionEnder ends a session and passes the sign-out on
// (session.Manager.End).
type SessionEnder interface {
	End(ctx context.Context, id string, cause session.Cause) (*session.Session, error)
}

// RefresherConfig configures a Refresher.
type RefresherConfig struct {
	// OAuth2 is the app's client configuration; its Endpoint.TokenURL is
	// used for the refresh_token grant. Required.
	OAuth2 *oauth2.Config
	// HTTPClient calls the token endpoint. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Leeway: a token expiring within it is refreshed first. Default 30s.
	Leeway time.Duration
	// Timeout bounds one refresh (token endpoint and store). Default 10s.
	Timeout time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// recentTTL is how long a refresh's outcome is remembered for requests
// that still carry the session as it was before the refresh.
const recentTTL = time.Minute

// Refresher is the TokenSource used in production: it returns the
// session's access token, refreshing it with the refresh_token grant
// shortly before it expires.
//
// Concurrent requests of one session cause a single refresh: they share
// it through a singleflight group keyed by session id, and requests that
// read the session before a refresh was saved reuse that refresh's outcome
// for a minute instead of presenting a (possibly rotated) refresh token
// again. The dedup is per process: replicas sharing Redis may each
// refresh once.
type Refresher struct {
	cfg    RefresherConfig
	store  SessionUpdater
	ender  SessionEnder
	logger *slog.Logger
	group  singleflight.Group

	mu     sync.Mutex
	recent map[string]outcome // by session id
}

// tokens is what a refresh yields.
type tokens struct {
	access, refresh string
	expiry          time.Time
}

// outcome is a remembered refresh: the session's refresh token before it
// (from) and either the new tokens or that the session was ended.
type outcome struct {
	from   string
	tokens tokens
	ended  bool
	at     time.Time
}

// NewRefresher returns a Refresher that saves refreshed tokens with store
// and ends sessions whose tokens cannot be refreshed with ender. A nil
// logger discards.
func NewRefresher(cfg RefresherConfig, store SessionUpdater, ender SessionEnder, logger *slog.Logger) *Refresher {
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
	return &Refresher{cfg: cfg, store: store, ender: ender, logger: logger, recent: make(map[string]outcome)}
}

// AccessToken returns s's access token if it is valid for longer than
// the leeway (a zero TokenExpiry means it does not expire). Otherwise it
// refreshes it, saves the session, and updates s's token fields in place,
// so a later save of s keeps the new tokens; s must be the caller's own
// copy, as session.Store hands out.
//
// If the token cannot be refreshed — no refresh token, or the token
// endpoint rejects the grant (a 4xx such as invalid_grant) — the session
// is ended with session.CauseRefreshFailed and the error wraps
// ErrSessionEnded. Transient failures (the token endpoint unreachable or
// answering 5xx, the store failing) return another error and leave the
// session alone: the next request tries again.
func (r *Refresher) AccessToken(ctx context.Context, s *session.Session) (string, error) {
	if s.AccessToken != "" && r.fresh(s.TokenExpiry) {
		return s.AccessToken, nil // the hot path
	}
	snapshot := s.Clone() // the shared refresh must not read s while the caller uses it
	ch := r.group.DoChan(s.ID, func() (any, error) {
		// Detached from the caller that happened to start the flight, so
		// its cancellation does not fail the others waiting for it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
		defer cancel()
		return r.refresh(ctx, snapshot)
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		t := res.Val.(tokens)
		s.AccessToken, s.RefreshToken, s.TokenExpiry = t.access, t.refresh, t.expiry
		return t.access, nil
	}
}

func (r *Refresher) fresh(expiry time.Time) bool {
	return expiry.IsZero() || r.cfg.Now().Add(r.cfg.Leeway).Before(expiry)
}

// refresh runs once per flight: it refreshes s's tokens and saves them,
// or ends the session.
func (r *Refresher) refresh(ctx context.Context, s *session.Session) (tokens, error) {
	refreshToken := s.RefreshToken
	if o, ok := r.recentOutcome(s); ok {
		if o.ended {
			return tokens{}, ErrSessionEnded
		}
		if r.fresh(o.tokens.expiry) {
			return o.tokens, nil
		}
		refreshToken = o.tokens.refresh
	}
	if refreshToken == "" {
		return tokens{}, r.end(ctx, s, errors.New("access token expired and there is no refresh token"))
	}

	if r.cfg.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, r.cfg.HTTPClient)
	}
	expired := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}
	tok, err := r.cfg.OAuth2.TokenSource(ctx, expired).Token()
	if err != nil {
		if rejected(err) {
			return tokens{}, r.end(ctx, s, err)
		}
		return tokens{}, fmt.Errorf("refresh access token: %w", err)
	}
	t := tokens{access: tok.AccessToken, refresh: tok.RefreshToken, expiry: tok.Expiry}
	if t.refresh == "" {
		t.refresh = refreshToken // the IdP did not rotate it
	}

	updated := s.Clone()
	updated.AccessToken, updated.RefreshToken, updated.TokenExpiry = t.access, t.refresh, t.expiry
	if err := r.store.Update(ctx, updated); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			// Ended meanwhile, e.g. by a logout.
			r.remember(s.ID, outcome{from: s.RefreshToken, ended: true})
			return tokens{}, fmt.Errorf("save refreshed tokens: %w", ErrSessionEnded)
		}
		return tokens{}, fmt.Errorf("save refreshed tokens: %w", err)
	}
	r.remember(s.ID, outcome{from: s.RefreshToken, tokens: t})
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
	r.remember(s.ID, outcome{from: s.RefreshToken, ended: true})
	attrs := []any{"app", s.App, "sid_hash", hashSID(s.SID), "reason", why}
	if _, err := r.ender.End(ctx, s.ID, session.CauseRefreshFailed); err != nil && !errors.Is(err, session.ErrNotFound) {
		r.logger.ErrorContext(ctx, "end session after failed token refresh", append(attrs, "error", err)...)
	} else {
		r.logger.InfoContext(ctx, "session ended: token refresh failed", attrs...)
	}
	return fmt.Errorf("refresh access token: %w", ErrSessionEnded)
}

// recentOutcome returns the remembered outcome of a refresh of s that s
// has not seen yet.
func (r *Refresher) recentOutcome(s *session.Session) (outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.recent[s.ID]
	if !ok || r.cfg.Now().Sub(o.at) > recentTTL {
		return outcome{}, false
	}
	// An ended session is over for every copy; tokens only replace the
	// ones they were refreshed from.
	return o, o.ended || o.from == s.RefreshToken
}

// remember records o for the session id and forgets expired outcomes.
func (r *Refresher) remember(id string, o outcome) {
	now := r.cfg.Now()
	o.at = now
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, old := range r.recent {
		if now.Sub(old.at) > recentTTL {
			delete(r.recent, k)
		}
	}
	r.recent[id] = o
}

// hashSID returns a short hash of the IdP's sid for logs, or "" if none.
func hashSID(sid string) string {
	if sid == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(sum[:8])
}
