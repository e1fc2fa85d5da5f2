package session

import (
	"context"
	"slices"
	"time"
)

// MarkUpstream implements Store.
func (m *MemoryStore) MarkUpstream(_ context.Context, id, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, old := m.live(id, m.now())
	if e == nil {
		return ErrNotFound
	}
	i, found := slices.BinarySearch(old.Upstreams, name)
	if found {
		return nil
	}
	n := *old
	// Versions share their Upstreams: build a new slice, never insert
	// into the one an older version (or a reader's Clone) is reading.
	n.Upstreams = slices.Insert(slices.Clone(old.Upstreams), i, name)
	e.s.Store(&n)
	return nil
}

// ReplaceTokens implements Store.
func (m *MemoryStore) ReplaceTokens(_ context.Context, id, from string, t Tokens) (*Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, old := m.live(id, m.now())
	if e == nil {
		return nil, false, ErrNotFound
	}
	if old.RefreshToken != from {
		return old.Clone(), false, nil
	}
	n := *old
	n.AccessToken, n.RefreshToken, n.TokenExpiry, n.TokenIssued, n.TokenType = t.AccessToken, t.RefreshToken, t.Expiry, t.Issued, t.TokenType
	if t.Claims != nil {
		n.Claims = slices.Clone(t.Claims)
	}
	e.s.Store(&n)
	return n.Clone(), true, nil
}

// refreshClaim is a claim on the refresh of one version of the tokens.
type refreshClaim struct {
	until time.Time
	from  string // the refresh token the claim is for
}

// ClaimRefresh implements Store.
func (m *MemoryStore) ClaimRefresh(_ context.Context, id string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e, s := m.live(id, now)
	if e == nil {
		return false, ErrNotFound
	}
	if e.claim.from == s.RefreshToken && now.Before(e.claim.until) {
		return false, nil
	}
	e.claim = refreshClaim{until: now.Add(ttl), from: s.RefreshToken}
	return true, nil
}

// ReleaseRefresh implements Store.
func (m *MemoryStore) ReleaseRefresh(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.items.Get(id); ok {
		v.(*entry).claim = refreshClaim{}
	}
	return nil
}

// Count implements Store: it walks the app's entries in the sub index.
func (m *MemoryStore) Count(_ context.Context, app string) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	cur := m.now()
	n := 0
	for k, es := range m.bySub {
		if k.app != app {
			continue
		}
		for _, e := range es {
			if !m.expired(e.s.Load(), cur) {
				n++
			}
		}
	}
	return n, nil
}
