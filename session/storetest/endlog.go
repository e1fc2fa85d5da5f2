package storetest

import (
	"context"
	"slices"
	"sync"

	"github.com/bffgate/bffgate/session"
)

// EndLog is a session.Observer for the tests of the manager's users: it
// records each ended session as "cause id".
type EndLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *EndLog) SessionEnded(_ context.Context, cause session.Cause, s *session.Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(cause)+" "+s.ID)
}

// Lines returns the records so far, in the order the sessions ended.
func (l *EndLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}
