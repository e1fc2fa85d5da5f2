package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
)

// MemoryConfig configures a MemoryStore.
type MemoryConfig struct {
	Timeouts Timeouts
	// Now is the store's clock for every expiry decision; default
	// time.Now. The go-cache TTLs derived from it only bound how long
	// dead entries take memory.
	Now func() time.Time
	// OnExpire, if set, is called once for each session that expires, from
	// the janitor goroutine, with a copy of the session. It is not called
	// for sessions ended by Delete, RevokeSID or RevokeSub. SetOnExpire
	// replaces it (NewManager does).
	OnExpire func(*Session)
	// CleanupInterval is how often the janitor drops expired sessions and
	// tombstones; default 1m.
	CleanupInterval time.Duration
}

// MemoryStore is the embedded Store: sessions and tombstones live in
// go-cache, the (app, iss, sid) and (app, iss, sub) indexes in maps beside
// it. Writers serialize on one mutex; Get takes none of its own (only
// go-cache's read lock), since stored sessions are immutable versions
// swapped atomically.
type MemoryStore struct {
	timeouts Timeouts
	now      func() time.Time
	onExpire atomic.Pointer[func(*Session)]

	mu     sync.RWMutex // guards writes, the indexes and tombstones
	items  *cache.Cache // id → *entry
	tombs  *cache.Cache // tombKey → time.Time of the revocation
	bySID  map[indexKey][]*entry
	bySub  map[indexKey][]*entry
	pairs  map[appIssuer]int // indexed sessions per (app, iss), for List
	intern map[string]string // app names and issuers, shared by all entries

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// entry is one stored session.
type entry struct {
	// s is the session's current version. A version is never modified:
	// writers, holding mu, store a new one. Its Claims and Upstreams are
	// the store's own and shared between versions.
	s atomic.Pointer[Session]
	// removed is set, under mu, when the entry leaves the indexes. Get
	// reads it without mu, and so does the go-cache eviction callback, to
	// tell an explicit removal (which holds mu) from an expiry.
	removed atomic.Bool
	// claim is the live refresh claim, if any (ClaimRefresh); guarded by
	// mu.
	claim refreshClaim
}

// indexKey is a key of the sid and sub indexes; v is the sid or the sub.
// It shares the session's strings, so it costs no allocation of its own.
type indexKey struct{ app, iss, v string }

type appIssuer struct{ app, iss string }

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a MemoryStore and starts its janitor; Close stops
// it.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = time.Minute
	}
	m := &MemoryStore{
		timeouts: cfg.Timeouts.withDefaults(),
		now:      cfg.Now,
		// No go-cache janitors: ours runs DeleteExpired and can be stopped.
		items:  cache.New(cache.NoExpiration, 0),
		tombs:  cache.New(cache.NoExpiration, 0),
		bySID:  make(map[indexKey][]*entry),
		bySub:  make(map[indexKey][]*entry),
		pairs:  make(map[appIssuer]int),
		intern: make(map[string]string),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	m.SetOnExpire(cfg.OnExpire)
	m.items.OnEvicted(m.evicted)
	go m.janitor(cfg.CleanupInterval)
	return m
}

// SetOnExpire replaces MemoryConfig.OnExpire; nil turns it off. It is safe
// to call at any time.
func (m *MemoryStore) SetOnExpire(f func(*Session)) {
	if f == nil {
		m.onExpire.Store(nil)
		return
	}
	m.onExpire.Store(&f)
}

// Create implements Store.
func (m *MemoryStore) Create(_ context.Context, s *Session) error {
	if s.ID == "" || s.App == "" || s.Issuer == "" || s.Subject == "" {
		return errors.New("create session: id, app, issuer and subject are required")
	}
	c := s.Clone()

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.LastSeen.IsZero() {
		c.LastSeen = now
	}
	if m.expired(c, now) {
		return errors.New("create session: already expired")
	}
	if c.SID != "" {
		if _, ok := m.tombstone(sidTomb, c.App, c.Issuer, c.SID, now); ok {
			return ErrRevoked
		}
	}
	if t, ok := m.tombstone(subTomb, c.App, c.Issuer, c.Subject, now); ok && !t.Before(c.CreatedAt) {
		return ErrRevoked
	}
	c.App = m.internString(c.App)
	c.Issuer = m.internString(c.Issuer)
	e := &entry{}
	e.s.Store(c)
	// Ids are 256 random bits (NewID): only a caller reusing one could hit
	// an entry that expired but that the janitor has not dropped yet, which
	// Add replaces; it would then linger in the indexes, skipped as expired.
	if err := m.items.Add(c.ID, e, m.ttl(c, now)); err != nil {
		return errors.New("create session: id already in use")
	}
	m.index(e)
	return nil
}

// Get implements Store. It is on the hot path: go-cache's read lock, one
// map lookup and one copy; it never waits for writers.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	_, s := m.live(id, m.now())
	if s == nil {
		return nil, ErrNotFound
	}
	// A sub tombstone never needs checking here: RevokeSub removes every
	// session it covers, and Create refuses the ones created before it.
	return s.Clone(), nil
}

// View is Get without the session's Claims (see Manager.View), and with
// its Upstreams shared with the store's version, clipped so that adding
// to them copies: one allocation instead of three.
func (m *MemoryStore) View(_ context.Context, id string) (*Session, error) {
	_, s := m.live(id, m.now())
	if s == nil {
		return nil, ErrNotFound
	}
	v := *s
	v.Claims = nil
	v.Upstreams = slices.Clip(s.Upstreams)
	return &v, nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(_ context.Context, id string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	e, old := m.live(id, cur)
	if e == nil {
		return ErrNotFound
	}
	if now.After(old.LastSeen) {
		s := *old
		s.LastSeen = now
		e.s.Store(&s)
		m.items.Set(id, e, m.ttl(&s, cur))
	}
	return nil
}

// Update implements Store.
func (m *MemoryStore) Update(_ context.Context, s *Session) error {
	claims, upstreams := slices.Clone(s.Claims), slices.Clone(s.Upstreams)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	e, old := m.live(s.ID, cur)
	if e == nil {
		return ErrNotFound
	}
	n := *old
	n.IDToken = s.IDToken
	n.Claims = claims
	n.AccessToken = s.AccessToken
	n.RefreshToken = s.RefreshToken
	n.TokenExpiry = s.TokenExpiry
	n.TokenIssued = s.TokenIssued
	n.TokenType = s.TokenType
	n.SessionState = s.SessionState
	if s.LastSeen.After(n.LastSeen) {
		n.LastSeen = s.LastSeen
	}
	n.Upstreams = upstreams
	e.s.Store(&n)
	m.items.Set(s.ID, e, m.ttl(&n, cur))
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, s := m.live(id, m.now())
	if e == nil {
		return nil, ErrNotFound
	}
	m.remove(e)
	return s.Clone(), nil
}

// Ping implements Store; the memory store is always reachable.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Close stops the janitor. The store stays usable, but expired sessions are
// no longer dropped nor reported. Close is idempotent.
func (m *MemoryStore) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// Len returns how many sessions the store holds, including expired ones
// the janitor has not dropped yet. It is meant for metrics and tests.
func (m *MemoryStore) Len() int { return m.items.ItemCount() }

// live returns the entry for id and its current version if it is live at
// now, else nils. Without mu, the answer may be stale by the time it
// returns; with mu held exclusively, it stands.
func (m *MemoryStore) live(id string, now time.Time) (*entry, *Session) {
	v, ok := m.items.Get(id)
	if !ok {
		return nil, nil
	}
	e := v.(*entry)
	s := e.s.Load()
	if e.removed.Load() || m.expired(s, now) {
		return nil, nil
	}
	return e, s
}

func (m *MemoryStore) expired(s *Session, now time.Time) bool {
	return now.After(s.Expiry(m.timeouts.Idle, m.timeouts.Absolute))
}

// ttl returns the go-cache lifetime of s: until its expiry, at least 1ns
// (go-cache reads 0 and -1 as "default" and "never").
func (m *MemoryStore) ttl(s *Session, now time.Time) time.Duration {
	return max(s.Expiry(m.timeouts.Idle, m.timeouts.Absolute).Sub(now), time.Nanosecond)
}

// remove takes a live entry out of the store without reporting it as
// expired. The caller holds mu exclusively.
func (m *MemoryStore) remove(e *entry) {
	e.removed.Store(true)
	m.unindex(e)
	m.items.Delete(e.s.Load().ID) // calls evicted, which sees removed and returns
}

// evicted is go-cache's eviction callback: for explicit removals (see
// remove) it does nothing; for expiries, called from the janitor without
// mu, it unindexes the entry and reports it.
func (m *MemoryStore) evicted(id string, v any) {
	e := v.(*entry)
	if e.removed.Load() {
		return
	}
	m.mu.Lock()
	if e.removed.Load() {
		m.mu.Unlock()
		return
	}
	// A Touch or Update racing with DeleteExpired may have put the entry
	// back with a later expiry: then it is live.
	if cur, ok := m.items.Get(id); ok && cur == any(e) {
		m.mu.Unlock()
		return
	}
	e.removed.Store(true)
	m.unindex(e)
	s := e.s.Load().Clone()
	m.mu.Unlock()
	if f := m.onExpire.Load(); f != nil {
		(*f)(s)
	}
}

// janitor drops expired sessions and tombstones every interval until
// Close.
func (m *MemoryStore) janitor(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.items.DeleteExpired()
			m.tombs.DeleteExpired()
		case <-m.stop:
			return
		}
	}
}

// internString returns one shared copy of v, for the few distinct app
// names and issuers (both come from config). The caller holds mu.
func (m *MemoryStore) internString(v string) string {
	if c, ok := m.intern[v]; ok {
		return c
	}
	v = strings.Clone(v) // never pin a larger buffer v may point into
	m.intern[v] = v
	return v
}

// String describes the store for logs.
func (m *MemoryStore) String() string {
	return fmt.Sprintf("memory session store (idle %s, absolute %s)", m.timeouts.Idle, m.timeouts.Absolute)
}
