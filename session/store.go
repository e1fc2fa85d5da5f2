package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Store keeps sessions, their (iss, sid) and (iss, sub) indexes, and the
// tombstones left by revocation. Every method is safe for concurrent use.
// Implementations: MemoryStore (embedded default) and RedisStore. Both
// must pass the contract suite in session/storetest.
//
// Expiry: a session is gone (Get returns ErrNotFound, the indexes no longer
// find it) once now passes Session.Expiry(idle, absolute) of the store's
// timeouts.
type Store interface {
	// Create stores a new session. It returns ErrRevoked, and stores
	// nothing, if (App, Issuer, SID) is tombstoned or if (App, Issuer,
	// Subject) has a tombstone not older than s.CreatedAt. A zero CreatedAt
	// or LastSeen is set to the store's now. It returns an error if ID,
	// App, Issuer or Subject is empty, if the ID is taken, or if the session
	// would already be expired.
	Create(ctx context.Context, s *Session) error
	// Get returns a copy of the live session with that id, or ErrNotFound.
	// A session that a sub tombstone newer than its CreatedAt covers is
	// not live.
	Get(ctx context.Context, id string) (*Session, error)
	// Touch sets LastSeen to now, sliding the idle expiry; it never moves
	// LastSeen back. ErrNotFound if the session is gone.
	Touch(ctx context.Context, id string, now time.Time) error
	// Update replaces a live session's tokens (IDToken, Claims,
	// AccessToken, RefreshToken, TokenExpiry, TokenType), SessionState and Upstreams
	// with those of s, and LastSeen if s's is later; the other fields are
	// fixed at Create. It never resurrects a deleted session: ErrNotFound
	// if it is gone.
	Update(ctx context.Context, s *Session) error
	// MarkUpstream adds name to a live session's Upstreams (sorted,
	// without duplicates) and changes nothing else: a request's copy of
	// the session may be stale, so it is never written back whole.
	// ErrNotFound if the session is gone.
	MarkUpstream(ctx context.Context, id, name string) error
	// ReplaceTokens is a compare-and-set of a live session's tokens: if its
	// refresh token is still from, the one the caller's refresh started
	// from, it writes t and returns the session as now stored and true.
	// If another refresh replaced the tokens first, it writes nothing and
	// returns the stored session, whose newer tokens the caller should
	// use, and false. It changes no other field (but Claims, if t has
	// them). ErrNotFound if the
	// session is gone.
	ReplaceTokens(ctx context.Context, id, from string, t Tokens) (*Session, bool, error)
	// ClaimRefresh reserves the refresh of a live session's current
	// tokens for ttl, so that one replica refreshes them while the others
	// wait for the result. It returns true if there was no live claim on
	// these tokens (from this or another replica). A claim lapses when
	// ttl passes or the tokens change. ErrNotFound if the session is gone.
	ClaimRefresh(ctx context.Context, id string, ttl time.Duration) (bool, error)
	// ReleaseRefresh drops the session's refresh claim, after a refresh
	// that failed without changing the tokens, so that the next request
	// need not wait for the claim to lapse. A session gone is no error.
	ReleaseRefresh(ctx context.Context, id string) error
	// Count returns how many live sessions the app has (for metrics).
	Count(ctx context.Context, app string) (int, error)
	// Delete removes one session and returns it; ErrNotFound if gone.
	Delete(ctx context.Context, id string) (*Session, error)
	// RevokeSID removes the app's sessions with (iss, sid) — and, if sub is
	// not empty, only those whose Subject is sub — and tombstones
	// (app, iss, sid) at now. It returns the sessions it removed.
	RevokeSID(ctx context.Context, app, iss, sid, sub string, now time.Time) ([]*Session, error)
	// RevokeSub removes every session of the app with (iss, sub) and
	// tombstones (app, iss, sub) at now. It returns the sessions removed.
	RevokeSub(ctx context.Context, app, iss, sub string, now time.Time) ([]*Session, error)
	// List returns the live sessions matching f (for the admin API),
	// oldest first.
	List(ctx context.Context, f Filter) ([]*Session, error)
	// ListSubject returns up to limit of the live sessions of (app, iss,
	// sub), newest (by CreatedAt) first: a user's own session list. Its
	// work is bounded whatever the number of sessions (limit ≥ 1).
	ListSubject(ctx context.Context, app, iss, sub string, limit int) ([]*Session, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources and stops its goroutines.
	Close() error
}

// Tokens are what a refresh replaces in a session.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // Session.TokenExpiry
	Issued       time.Time // Session.TokenIssued
	TokenType    string    // Session.TokenType
	// Claims, when not nil, replace Session.Claims (claims fetched again
	// with the new access token, e.g. from userinfo).
	Claims json.RawMessage
}

// Filter selects sessions for Store.List. Empty fields match anything,
// but at least one of App, Subject or SID must be set.
type Filter struct {
	App     string
	Issuer  string
	Subject string
	SID     string
}

// Timeouts are the session lifetimes a store enforces. Zero or negative
// values mean the defaults.
type Timeouts struct {
	Idle     time.Duration // sliding; default 30m
	Absolute time.Duration // from creation; default 8h
}

// Default session lifetimes.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 8 * time.Hour
)

// withDefaults returns t with zero or negative values replaced by the
// defaults.
func (t Timeouts) withDefaults() Timeouts {
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	if t.Absolute <= 0 {
		t.Absolute = DefaultAbsoluteTimeout
	}
	return t
}

// validFilter reports an error if f selects everything.
func validFilter(f Filter) error {
	if f.App == "" && f.Subject == "" && f.SID == "" {
		return errors.New("list sessions: filter needs an app, subject or sid")
	}
	return nil
}
