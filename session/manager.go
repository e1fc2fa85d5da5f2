package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Observer learns that sessions ended, whatever the cause. SessionEnded is
// called synchronously, in registration order, for each ended session, so
// it must be quick and must not modify s.
type Observer interface {
	SessionEnded(ctx context.Context, cause Cause, s *Session)
}

// RemoteObserver is an Observer that also wants to learn of the sessions
// other replicas ended, when the store is shared (RedisStore broadcasts
// them). Only the id and the cause travel: the session is already gone
// from the store. Implement it for per-replica fan-out, such as closing
// this replica's event streams of the session; observers that must act
// once per ended session (downstream notifications, metrics, refresh
// token revocation) must not, since the replica that ended the session
// already told its own observers. SessionEndedElsewhere is called from
// the store's listener goroutine and must be quick.
type RemoteObserver interface {
	Observer
	SessionEndedElsewhere(ctx context.Context, cause Cause, id string)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, cause Cause, s *Session)

// SessionEnded calls f.
func (f ObserverFunc) SessionEnded(ctx context.Context, cause Cause, s *Session) { f(ctx, cause, s) }

// Manager owns the session lifecycle: it is the only way to start, use
// and end a session. Every end (End, EndBySID, EndBySub, an expiry the
// store reports) has a cause, tells the observers, writes one audit log
// record per session and counts in bffgate_sessions_ended_total. The
// store is unexported on purpose: a plain Delete cannot skip the effects.
// Besides the lifecycle, the Manager forwards the reads and the narrow
// updates the request path needs (Get, Touch, MarkUpstream,
// ReplaceTokens, List, Ping).
type Manager struct {
	store Store

	logger  *slog.Logger
	now     func() time.Time
	metrics *managerMetrics

	mu        sync.RWMutex
	observers []Observer
	remote    []RemoteObserver
	bcast     broadcaster // nil unless the store is shared
}

// broadcaster is implemented by stores shared between replicas
// (RedisStore): Broadcast tells the other replicas of sessions ended
// here, and SetOnRemoteEnd registers the function told of those ended
// there. NewManager wires both.
type broadcaster interface {
	Broadcast(ctx context.Context, cause Cause, ids []string) error
	SetOnRemoteEnd(func(cause Cause, id string))
}

// broadcastTimeout bounds the broadcast of one session end.
const broadcastTimeout = 2 * time.Second

// expiryReporter is implemented by stores that report expiries
// themselves (MemoryStore). NewManager registers Manager.Expired with them.
type expiryReporter interface {
	SetOnExpire(func(*Session))
}

// NewManager returns the Manager that owns store's sessions; the caller
// must not use store any more, except to Close it after the Manager is
// done (or call Manager.Close). If the store reports expiries
// (MemoryStore.SetOnExpire), NewManager registers the Manager there,
// replacing any MemoryConfig.OnExpire, so that expiries reach the
// observers with no further wiring. If the store is shared between
// replicas (RedisStore), the Manager broadcasts every session end through
// it and passes the other replicas' ends to its RemoteObservers. A nil
// logger discards the audit log.
func NewManager(store Store, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{store: store, logger: logger, now: time.Now, metrics: newManagerMetrics()}
	if r, ok := store.(expiryReporter); ok {
		r.SetOnExpire(m.expired)
	}
	if b, ok := store.(broadcaster); ok {
		m.bcast = b
		b.SetOnRemoteEnd(m.endedElsewhere)
	}
	return m
}

// Observe adds o to the observers. If o is a RemoteObserver, it also
// learns of the sessions other replicas end. It is safe to call at any
// time, but sessions that end before it are not reported to o.
func (m *Manager) Observe(o Observer) {
	m.mu.Lock()
	m.observers = append(m.observers, o)
	if r, ok := o.(RemoteObserver); ok {
		m.remote = append(m.remote, r)
	}
	m.mu.Unlock()
}

// Create stores a new session (see Store.Create) and writes its audit
// record (cause login).
func (m *Manager) Create(ctx context.Context, s *Session) error {
	if err := m.store.Create(ctx, s); err != nil {
		return err
	}
	m.audit(ctx, "session started", CauseLogin, s)
	return nil
}

// Get returns a copy of the live session with that id, or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	return m.store.Get(ctx, id)
}

// viewer is implemented by stores that can hand out a session without
// its Claims more cheaply than Get (MemoryStore).
type viewer interface {
	View(ctx context.Context, id string) (*Session, error)
}

// View returns the live session with that id, or ErrNotFound, like Get
// but without its Claims (nil): the request path (the proxy, the token
// refresh) never reads them, and copying them on every request is the
// largest part of a Get. The caller may change the returned session's
// fields, but must not save it with Update (its claims would be lost) nor
// modify its Upstreams in place (AddUpstream is fine: it copies).
func (m *Manager) View(ctx context.Context, id string) (*Session, error) {
	if v, ok := m.store.(viewer); ok {
		return v.View(ctx, id)
	}
	s, err := m.store.Get(ctx, id)
	if s != nil {
		s.Claims = nil
	}
	return s, err
}

// Touch slides the session's idle expiry to now (see Store.Touch).
func (m *Manager) Touch(ctx context.Context, id string, now time.Time) error {
	return m.store.Touch(ctx, id, now)
}

// MarkUpstream records that the session called the named upstream (see
// Store.MarkUpstream); it changes nothing else.
func (m *Manager) MarkUpstream(ctx context.Context, id, name string) error {
	return m.store.MarkUpstream(ctx, id, name)
}

// ReplaceTokens saves the tokens of a refresh that started from the
// refresh token from (see Store.ReplaceTokens).
func (m *Manager) ReplaceTokens(ctx context.Context, id, from string, t Tokens) (*Session, bool, error) {
	return m.store.ReplaceTokens(ctx, id, from, t)
}

// ClaimRefresh reserves the refresh of the session's current tokens
// for ttl (see Store.ClaimRefresh).
func (m *Manager) ClaimRefresh(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	return m.store.ClaimRefresh(ctx, id, ttl)
}

// ReleaseRefresh drops the session's refresh claim (see
// Store.ReleaseRefresh).
func (m *Manager) ReleaseRefresh(ctx context.Context, id string) error {
	return m.store.ReleaseRefresh(ctx, id)
}

// List returns the live sessions matching f, oldest first.
func (m *Manager) List(ctx context.Context, f Filter) ([]*Session, error) {
	return m.store.List(ctx, f)
}

// ListSubject returns up to limit of the live sessions of (app, iss,
// sub), newest first (see Store.ListSubject).
func (m *Manager) ListSubject(ctx context.Context, app, iss, sub string, limit int) ([]*Session, error) {
	return m.store.ListSubject(ctx, app, iss, sub, limit)
}

// Ping reports whether the store is reachable.
func (m *Manager) Ping(ctx context.Context) error { return m.store.Ping(ctx) }

// Close closes the store.
func (m *Manager) Close() error { return m.store.Close() }

// String describes the store for logs.
func (m *Manager) String() string { return fmt.Sprint(m.store) }

// errNoCause: every end has a cause, for the observers, the audit log
// and the metrics.
var errNoCause = errors.New("end session: no cause given")

// End ends the session with that id; ErrNotFound if it is gone.
func (m *Manager) End(ctx context.Context, id string, cause Cause) (*Session, error) {
	if cause == "" {
		return nil, errNoCause
	}
	s, err := m.store.Delete(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("end session: %w", err)
	}
	m.ended(ctx, cause, s)
	m.broadcast(ctx, cause, []*Session{s})
	return s, nil
}

// EndBySID ends the app's sessions with (iss, sid), only those of sub if
// sub is not empty, and tombstones (app, iss, sid). It returns the
// sessions it ended, possibly none.
func (m *Manager) EndBySID(ctx context.Context, app, iss, sid, sub string, cause Cause) ([]*Session, error) {
	if cause == "" {
		return nil, errNoCause
	}
	ss, err := m.store.RevokeSID(ctx, app, iss, sid, sub, m.now())
	if err != nil {
		return nil, fmt.Errorf("end sessions by sid: %w", err)
	}
	for _, s := range ss {
		m.ended(ctx, cause, s)
	}
	m.broadcast(ctx, cause, ss)
	return ss, nil
}

// EndBySub ends all the app's sessions of (iss, sub) and tombstones
// (app, iss, sub). It returns the sessions it ended, possibly none.
func (m *Manager) EndBySub(ctx context.Context, app, iss, sub string, cause Cause) ([]*Session, error) {
	if cause == "" {
		return nil, errNoCause
	}
	ss, err := m.store.RevokeSub(ctx, app, iss, sub, m.now())
	if err != nil {
		return nil, fmt.Errorf("end sessions by sub: %w", err)
	}
	for _, s := range ss {
		m.ended(ctx, cause, s)
	}
	m.broadcast(ctx, cause, ss)
	return ss, nil
}

// expired reports a session the store dropped because it expired, with
// CauseExpired and context.Background(). Its signature fits
// MemoryConfig.OnExpire.
func (m *Manager) expired(s *Session) {
	m.ended(context.Background(), CauseExpired, s)
}

// ended audits and reports one ended session.
func (m *Manager) ended(ctx context.Context, cause Cause, s *Session) {
	m.audit(ctx, "session ended", cause, s)
	m.metrics.ended.WithLabelValues(s.App, string(cause)).Inc()
	m.mu.RLock()
	obs := m.observers
	m.mu.RUnlock()
	for _, o := range obs {
		o.SessionEnded(ctx, cause, s)
	}
}

// broadcast tells the other replicas, if any, that the sessions ended.
// A failure is logged: the sessions are gone from the shared store
// already, so every replica refuses them; only the other replicas' event
// streams miss their logout event.
func (m *Manager) broadcast(ctx context.Context, cause Cause, ss []*Session) {
	if m.bcast == nil || len(ss) == 0 {
		return
	}
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), broadcastTimeout)
	defer cancel()
	if err := m.bcast.Broadcast(ctx, cause, ids); err != nil {
		m.logger.LogAttrs(ctx, slog.LevelWarn, "session end not broadcast to the other replicas",
			slog.String("cause", string(cause)), slog.Int("sessions", len(ids)), slog.String("err", err.Error()))
	}
}

// endedElsewhere passes a session another replica ended to the
// RemoteObservers.
func (m *Manager) endedElsewhere(cause Cause, id string) {
	m.mu.RLock()
	obs := m.remote
	m.mu.RUnlock()
	for _, o := range obs {
		o.SessionEndedElsewhere(context.Background(), cause, id)
	}
}

// audit logs one session event with hashed identifiers only.
func (m *Manager) audit(ctx context.Context, msg string, cause Cause, s *Session) {
	if !m.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	m.logger.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.String("event", strings.ReplaceAll(msg, " ", "_")),
		slog.String("app", s.App),
		slog.String("cause", string(cause)),
		slog.String("sid_hash", Hash(s.SID)),
		slog.String("sub_hash", Hash(s.Subject)),
		slog.String("session_hash", Hash(s.ID)),
	)
}

// Hash returns the first 16 hex digits of the SHA-256 of v, or "" for "":
// a stable, non-reversible stand-in for sids, subs and session ids in logs
// and metrics.
func Hash(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}
