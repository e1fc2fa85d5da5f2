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
// it. One RWMutex guards the entries and the indexes; Get takes it shared.
type MemoryStore struct {
	timeouts Timeouts
	now      func() time.Time
	onExpire atomic.Pointer[func(*Session)]

	mu     sync.RWMutex
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

// entry is one stored session. Its fields are guarded by MemoryStore.mu.
type entry struct {
	s Session
	// removed is set, under mu, when the entry leaves the indexes; the
	// go-cache eviction callback reads it without mu to tell an explicit
	// removal (which holds mu) from an expiry.
	removed atomic.Bool
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
	e := &entry{s: *s}
	e.s.Claims = slices.Clone(s.Claims)
	e.s.Upstreams = slices.Clone(s.Upstreams)

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e.s.CreatedAt.IsZero() {
		e.s.CreatedAt = now
	}
	if e.s.LastSeen.IsZero() {
		e.s.LastSeen = now
	}
	if m.expired(&e.s, now) {
		return errors.New("create session: already expired")
	}
	if e.s.SID != "" {
		if _, ok := m.tombstone(sidTomb, e.s.App, e.s.Issuer, e.s.SID, now); ok {
			return ErrRevoked
		}
	}
	if t, ok := m.tombstone(subTomb, e.s.App, e.s.Issuer, e.s.Subject, now); ok && !t.Before(e.s.CreatedAt) {
		return ErrRevoked
	}
	e.s.App = m.internString(e.s.App)
	e.s.Issuer = m.internString(e.s.Issuer)
	// Ids are 256 random bits (NewID): only a caller reusing one could hit
	// an entry that expired but that the janitor has not dropped yet, which
	// Add replaces; it would then linger in the indexes, skipped as expired.
	if err := m.items.Add(e.s.ID, e, m.ttl(&e.s, now)); err != nil {
		return errors.New("create session: id already in use")
	}
	m.index(e)
	return nil
}

// Get implements Store. It is on the hot path: a shared lock, two map
// lookups and one copy.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.live(id, m.now())
	if e == nil {
		return nil, ErrNotFound
	}
	// A sub tombstone never needs checking here: RevokeSub removes every
	// session it covers, and Create refuses the ones created before it.
	return e.s.Clone(), nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(_ context.Context, id string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	e := m.live(id, cur)
	if e == nil {
		return ErrNotFound
	}
	if now.After(e.s.LastSeen) {
		e.s.LastSeen = now
		m.items.Set(id, e, m.ttl(&e.s, cur))
	}
	return nil
}

// Update implements Store.
func (m *MemoryStore) Update(_ context.Context, s *Session) error {
	claims, upstreams := slices.Clone(s.Claims), slices.Clone(s.Upstreams)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	e := m.live(s.ID, cur)
	if e == nil {
		return ErrNotFound
	}
	e.s.IDToken = s.IDToken
	e.s.Claims = claims
	e.s.AccessToken = s.AccessToken
	e.s.RefreshToken = s.RefreshToken
	e.s.TokenExpiry = s.TokenExpiry
	e.s.SessionState = s.SessionState
	e.s.LastSeen = s.LastSeen
	e.s.Upstreams = upstreams
	m.items.Set(s.ID, e, m.ttl(&e.s, cur))
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.live(id, m.now())
	if e == nil {
		return nil, ErrNotFound
	}
	m.remove(e)
	return e.s.Clone(), nil
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

// live returns the entry for id if it is live at now, else nil. The caller
// holds mu, shared or exclusive.
func (m *MemoryStore) live(id string, now time.Time) *entry {
	v, ok := m.items.Get(id)
	if !ok {
		return nil
	}
	e := v.(*entry)
	if e.removed.Load() || m.expired(&e.s, now) {
		return nil
	}
	return e
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
	m.items.Delete(e.s.ID) // calls evicted, which sees removed and returns
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
	s := e.s.Clone()
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
