package session

import (
	"context"
	"errors"
	"slices"
)

// errListSubject: ListSubject needs the whole (app, iss, sub) and a limit.
var errListSubject = errors.New("list subject: app, issuer, subject and a positive limit are required")

// ListSubject implements Store: one index lookup, then the live entries
// of that key, newest first.
func (m *MemoryStore) ListSubject(_ context.Context, app, iss, sub string, limit int) ([]*Session, error) {
	if app == "" || iss == "" || sub == "" || limit < 1 {
		return nil, errListSubject
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cur := m.now()
	var live []*Session
	for _, e := range m.bySub[indexKey{app, iss, sub}] {
		if s := e.s.Load(); !m.expired(s, cur) {
			live = append(live, s)
		}
	}
	sortNewestFirst(live)
	live = live[:min(len(live), limit)]
	out := make([]*Session, len(live))
	for i, s := range live {
		out[i] = s.Clone()
	}
	return out, nil
}

// sortNewestFirst sorts by CreatedAt, newest first (then by id).
func sortNewestFirst(ss []*Session) {
	sortSessions(ss)
	slices.Reverse(ss)
}
