// Package storetest is the contract suite every session.Store must pass.
// A store's own test calls Run with a factory:
//
//	func TestMemoryStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, cfg storetest.Config) session.Store {
//			s := session.NewMemoryStore(session.MemoryConfig{Timeouts: cfg.Timeouts, Now: cfg.Now})
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite owns a fake clock and moves it; it never waits for real time,
// so it does not depend on a store's janitor or on TTLs kept by a server.
// Every subtest uses its own app names, issuers, subjects and sids, so a
// store shared between subtests (one Redis database) does not disturb it.
//
// It also starts the Redis servers, clusters and Sentinels those tests
// run against, and records ended sessions (EndLog) for the tests of the
// session manager's users.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// Config is what the suite asks of a store. The factory must build the
// store with exactly these timeouts and clock, and register its cleanup
// with t.Cleanup.
type Config struct {
	Timeouts session.Timeouts
	Now      func() time.Time
}

// The timeouts every subtest runs with.
const (
	idle     = 10 * time.Minute
	absolute = time.Hour
)

// Run runs the contract suite against the stores newStore makes, one
// fresh store per subtest.
func Run(t *testing.T, newStore func(t *testing.T, cfg Config) session.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"CreateGet", testCreateGet},
		{"Copies", testCopies},
		{"UnknownID", testUnknownID},
		{"CreateRejects", testCreateRejects},
		{"CreateDefaultsTimes", testCreateDefaultsTimes},
		{"Update", testUpdate},
		{"MarkUpstream", testMarkUpstream},
		{"ReplaceTokens", testReplaceTokens},
		{"ReplaceTokensConcurrent", testReplaceTokensConcurrent},
		{"ClaimRefresh", testClaimRefresh},
		{"Count", testCount},
		{"IdleExpirySlidesWithTouch", testIdleExpiry},
		{"AbsoluteExpiry", testAbsoluteExpiry},
		{"ExpiredLeavesNoTrace", testExpiredLeavesNoTrace},
		{"Delete", testDelete},
		{"RevokeSID", testRevokeSID},
		{"RevokeSub", testRevokeSub},
		{"SIDTombstone", testSIDTombstone},
		{"SubTombstone", testSubTombstone},
		{"List", testList},
		{"ListSubject", testListSubject},
		{"ListSubjectSkipsExpired", testListSubjectSkipsExpired},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)}
			cfg := Config{Timeouts: session.Timeouts{Idle: idle, Absolute: absolute}, Now: clk.Now}
			tt.fn(t, &env{
				store: newStore(t, cfg),
				clock: clk,
				ns:    session.NewID()[:8],
			})
		})
	}
}

// clock is the suite's fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// env is one subtest's store, clock and namespace.
type env struct {
	store session.Store
	clock *clock
	ns    string
}

// app, iss, sub and sid return names unique to the subtest.
func (e *env) app(name string) string { return name + "-" + e.ns }
func (e *env) iss(name string) string { return "https://" + name + "-" + e.ns + ".example/realm" }
func (e *env) sub(name string) string { return name + "-" + e.ns }
func (e *env) sid(name string) string { return "sid-" + name + "-" + e.ns }

// newSession returns a session created now, with tokens.
func (e *env) newSession(app, iss, sub, sid string) *session.Session {
	now := e.clock.Now()
	id := session.NewID()
	return &session.Session{
		ID:           id,
		App:          app,
		Issuer:       iss,
		Subject:      sub,
		SID:          sid,
		IDToken:      "id-token-" + id,
		Claims:       json.RawMessage(`{"sub":"` + sub + `","name":"Ada"}`),
		AccessToken:  "access-" + id,
		RefreshToken: "refresh-" + id,
		TokenExpiry:  now.Add(5 * time.Minute),
		TokenIssued:  now,
		SessionState: "state-" + id,
		CreatedAt:    now,
		LastSeen:     now,
		Upstreams:    []string{"api", "orders"},
		Browser:      "Firefox 128 on Linux",
		Address:      "203.0.113.7",
		TokenType:    "DPoP",
		// a DPoP key (32 bytes) that depends on the id, so that a record
		// moved to another session would show
		DPoPKey: []byte(fmt.Sprintf("%-32.32s", "key-"+id)),
	}
}

// mustCreate creates a session and fails the test if that fails.
func (e *env) mustCreate(t *testing.T, app, iss, sub, sid string) *session.Session {
	t.Helper()
	s := e.newSession(app, iss, sub, sid)
	if err := e.store.Create(context.Background(), s); err != nil {
		t.Fatalf("Create(%s/%s/%s/%s): %v", app, iss, sub, sid, err)
	}
	return s
}

// diff describes how got differs from want, field by field; "" if equal.
// Times compare with Equal and nil slices equal empty ones, so stores that
// serialize (JSON in Redis) compare fairly.
func diff(got, want *session.Session) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if !g.Equal(w) {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	str("ID", got.ID, want.ID)
	str("App", got.App, want.App)
	str("Issuer", got.Issuer, want.Issuer)
	str("Subject", got.Subject, want.Subject)
	str("SID", got.SID, want.SID)
	str("IDToken", got.IDToken, want.IDToken)
	if !bytes.Equal(got.Claims, want.Claims) {
		d = append(d, fmt.Sprintf("Claims: got %s, want %s", got.Claims, want.Claims))
	}
	str("AccessToken", got.AccessToken, want.AccessToken)
	str("RefreshToken", got.RefreshToken, want.RefreshToken)
	tm("TokenExpiry", got.TokenExpiry, want.TokenExpiry)
	tm("TokenIssued", got.TokenIssued, want.TokenIssued)
	str("SessionState", got.SessionState, want.SessionState)
	tm("CreatedAt", got.CreatedAt, want.CreatedAt)
	tm("LastSeen", got.LastSeen, want.LastSeen)
	str("Browser", got.Browser, want.Browser)
	str("Address", got.Address, want.Address)
	str("TokenType", got.TokenType, want.TokenType)
	if !bytes.Equal(got.DPoPKey, want.DPoPKey) {
		d = append(d, fmt.Sprintf("DPoPKey: got %x, want %x", got.DPoPKey, want.DPoPKey))
	}
	if !slices.Equal(got.Upstreams, want.Upstreams) {
		d = append(d, fmt.Sprintf("Upstreams: got %q, want %q", got.Upstreams, want.Upstreams))
	}
	return strings.Join(d, "; ")
}

// ids returns the sorted ids of ss.
func ids(ss []*session.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	slices.Sort(out)
	return out
}
