package session

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"
)

// Tombstone kinds, the first part of a tombstone's go-cache key.
const (
	sidTomb = "sid"
	subTomb = "sub"
)

// RevokeSID implements Store.
func (m *MemoryStore) RevokeSID(_ context.Context, app, iss, sid, sub string, now time.Time) ([]*Session, error) {
	if app == "" || iss == "" || sid == "" {
		return nil, errors.New("revoke sid: app, issuer and sid are required")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	var victims []*entry
	for _, e := range m.bySID[indexKey{app, iss, sid}] {
		if s := e.s.Load(); (sub == "" || s.Subject == sub) && !m.expired(s, cur) {
			victims = append(victims, e)
		}
	}
	m.setTombstone(sidTomb, app, iss, sid, now, cur)
	return m.removeAll(victims), nil
}

// RevokeSub implements Store.
func (m *MemoryStore) RevokeSub(_ context.Context, app, iss, sub string, now time.Time) ([]*Session, error) {
	if app == "" || iss == "" || sub == "" {
		return nil, errors.New("revoke sub: app, issuer and subject are required")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.now()
	k := indexKey{app, iss, sub}
	var victims, expired []*entry
	for _, e := range m.bySub[k] {
		if m.expired(e.s.Load(), cur) {
			expired = append(expired, e) // the janitor reports them
		} else {
			victims = append(victims, e)
		}
	}
	// Drop the key at once rather than each victim from it, which would
	// cost O(victims²).
	if len(expired) == 0 {
		delete(m.bySub, k)
	} else {
		m.bySub[k] = expired
	}
	m.setTombstone(subTomb, app, iss, sub, now, cur)
	return m.removeAll(victims), nil
}

// List implements Store. With a sid or a subject it looks up the index of
// each known (app, iss) the filter admits, so it costs O(apps + matches);
// with only an app it walks that index's keys.
func (m *MemoryStore) List(_ context.Context, f Filter) ([]*Session, error) {
	if err := validFilter(f); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cur := m.now()
	var out []*Session
	keep := func(es []*entry) {
		for _, e := range es {
			s := e.s.Load()
			if (f.Subject == "" || s.Subject == f.Subject) &&
				(f.SID == "" || s.SID == f.SID) &&
				!m.expired(s, cur) {
				out = append(out, s.Clone())
			}
		}
	}
	switch {
	case f.SID != "" || f.Subject != "":
		idx, v := m.bySub, f.Subject
		if f.SID != "" {
			idx, v = m.bySID, f.SID
		}
		for p := range m.pairs {
			if (f.App == "" || p.app == f.App) && (f.Issuer == "" || p.iss == f.Issuer) {
				keep(idx[indexKey{p.app, p.iss, v}])
			}
		}
	default:
		for k, es := range m.bySub {
			if k.app == f.App && (f.Issuer == "" || k.iss == f.Issuer) {
				keep(es)
			}
		}
	}
	sortSessions(out)
	return out, nil
}

// removeAll removes the entries and returns copies of their sessions,
// oldest first. The caller holds mu exclusively.
func (m *MemoryStore) removeAll(es []*entry) []*Session {
	out := make([]*Session, len(es))
	for i, e := range es {
		m.remove(e)
		out[i] = e.s.Load().Clone()
	}
	sortSessions(out)
	return out
}

func sortSessions(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
}

// index adds e to the sid and sub indexes. The caller holds mu
// exclusively.
func (m *MemoryStore) index(e *entry) {
	s := e.s.Load()
	if s.SID != "" {
		k := indexKey{s.App, s.Issuer, s.SID}
		m.bySID[k] = append(m.bySID[k], e)
	}
	k := indexKey{s.App, s.Issuer, s.Subject}
	m.bySub[k] = append(m.bySub[k], e)
	m.pairs[appIssuer{s.App, s.Issuer}]++
}

// unindex removes e from the sid and sub indexes. The caller holds mu
// exclusively.
func (m *MemoryStore) unindex(e *entry) {
	s := e.s.Load()
	if s.SID != "" {
		dropEntry(m.bySID, indexKey{s.App, s.Issuer, s.SID}, e)
	}
	dropEntry(m.bySub, indexKey{s.App, s.Issuer, s.Subject}, e)
	p := appIssuer{s.App, s.Issuer}
	if m.pairs[p]--; m.pairs[p] <= 0 {
		delete(m.pairs, p)
	}
}

// dropEntry removes e from idx[k], and the key once it is empty. The
// order within a key does not matter, so it swaps with the last entry.
func dropEntry(idx map[indexKey][]*entry, k indexKey, e *entry) {
	es := idx[k]
	i := slices.Index(es, e)
	if i < 0 {
		return
	}
	last := len(es) - 1
	es[i] = es[last]
	es[last] = nil
	if last == 0 {
		delete(idx, k)
		return
	}
	idx[k] = es[:last]
}

func tombKey(kind, app, iss, v string) string {
	return kind + "\x00" + app + "\x00" + iss + "\x00" + v
}

// tombstone returns when (app, iss, v) was last revoked, if that is less
// than the absolute timeout before now. The caller holds mu.
func (m *MemoryStore) tombstone(kind, app, iss, v string, now time.Time) (time.Time, bool) {
	x, ok := m.tombs.Get(tombKey(kind, app, iss, v))
	if !ok {
		return time.Time{}, false
	}
	at := x.(time.Time)
	if now.After(at.Add(m.timeouts.Absolute)) {
		return time.Time{}, false
	}
	return at, true
}

// setTombstone records a revocation of (app, iss, v) at the given time,
// keeping the later one if there is already a tombstone. cur is the
// store's now. The caller holds mu exclusively.
func (m *MemoryStore) setTombstone(kind, app, iss, v string, at, cur time.Time) {
	if prev, ok := m.tombstone(kind, app, iss, v, cur); ok && prev.After(at) {
		at = prev
	}
	ttl := max(at.Add(m.timeouts.Absolute).Sub(cur), time.Nanosecond)
	m.tombs.Set(tombKey(kind, app, iss, v), at, ttl)
}
