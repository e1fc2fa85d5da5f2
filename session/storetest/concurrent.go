package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// worklog is what one goroutine of testConcurrent did.
type worklog struct {
	created  []*session.Session // Create returned nil
	refused  []*session.Session // Create returned ErrRevoked
	ended    []string           // ids returned by Delete, RevokeSID, RevokeSub
	subRevs  map[string][]time.Time
	sidRevs  map[string]bool
	failures []string
}

func (w *worklog) failf(format string, args ...any) {
	w.failures = append(w.failures, fmt.Sprintf(format, args...))
}

// testConcurrent hammers one store from many goroutines with creates,
// reads, touches, updates, deletes and revocations of a few subs and sids,
// then checks that the store's state is one some serial order explains.
func testConcurrent(t *testing.T, e *env) {
	const (
		workers = 16
		ops     = 500
		nsubs   = 4
		nsids   = 3 // per sub
	)
	ctx := context.Background()
	app, iss := e.app("a"), e.iss("idp")
	sub := func(i int) string { return e.sub(fmt.Sprint("user", i)) }
	sid := func(i, j int) string { return e.sid(fmt.Sprint(i, "-", j)) }

	logs := make([]*worklog, workers)
	start := make(chan struct{}) // so that the workers overlap
	var wg sync.WaitGroup
	for w := range workers {
		logs[w] = &worklog{subRevs: map[string][]time.Time{}, sidRevs: map[string]bool{}}
		wg.Go(func() {
			<-start
			l := logs[w]
			r := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []*session.Session
			pick := func() *session.Session { return mine[r.IntN(len(mine))] }
			for range ops {
				op := r.IntN(100)
				if len(mine) == 0 {
					op = 0
				}
				switch {
				case op < 30: // create
					i := r.IntN(nsubs)
					s := e.newSession(app, iss, sub(i), sid(i, r.IntN(nsids)))
					switch err := e.store.Create(ctx, s); {
					case err == nil:
						l.created = append(l.created, s)
						mine = append(mine, s)
					case errors.Is(err, session.ErrRevoked):
						l.refused = append(l.refused, s)
					default:
						l.failf("Create: %v", err)
					}
				case op < 60: // get
					s := pick()
					got, err := e.store.Get(ctx, s.ID)
					if err == nil && (got.ID != s.ID || got.Subject != s.Subject || !strings.HasPrefix(got.AccessToken, "access-"+s.ID)) {
						l.failf("Get(%s) returned a torn or foreign session: id %s, sub %s, access token %q", s.ID, got.ID, got.Subject, got.AccessToken)
					}
					if err != nil && !errors.Is(err, session.ErrNotFound) {
						l.failf("Get: %v", err)
					}
				case op < 75: // touch
					if err := e.store.Touch(ctx, pick().ID, e.clock.Advance(time.Millisecond)); err != nil && !errors.Is(err, session.ErrNotFound) {
						l.failf("Touch: %v", err)
					}
				case op < 85: // update
					u := pick().Clone()
					u.AccessToken = fmt.Sprint("access-", u.ID, "-", r.Int())
					u.LastSeen = e.clock.Now()
					if err := e.store.Update(ctx, u); err != nil && !errors.Is(err, session.ErrNotFound) {
						l.failf("Update: %v", err)
					}
				case op < 90: // delete
					s, err := e.store.Delete(ctx, pick().ID)
					switch {
					case err == nil:
						l.ended = append(l.ended, s.ID)
					case !errors.Is(err, session.ErrNotFound):
						l.failf("Delete: %v", err)
					}
				case op < 96: // RevokeSID, with the sub filter half of the time
					i, j := r.IntN(nsubs), r.IntN(nsids)
					filter := ""
					if r.IntN(2) == 0 {
						filter = sub(i)
					}
					l.sidRevs[sid(i, j)] = true
					ss, err := e.store.RevokeSID(ctx, app, iss, sid(i, j), filter, e.clock.Now())
					if err != nil {
						l.failf("RevokeSID: %v", err)
					}
					l.ended = append(l.ended, ids(ss)...)
				default: // RevokeSub
					i := r.IntN(nsubs)
					now := e.clock.Now()
					l.subRevs[sub(i)] = append(l.subRevs[sub(i)], now)
					ss, err := e.store.RevokeSub(ctx, app, iss, sub(i), now)
					if err != nil {
						l.failf("RevokeSub: %v", err)
					}
					l.ended = append(l.ended, ids(ss)...)
				}
			}
		})
	}
	close(start)
	wg.Wait()

	created := map[string]*session.Session{}
	endedBy := map[string]int{}
	subRevs := map[string][]time.Time{}
	sidRevs := map[string]bool{}
	for _, l := range logs {
		for _, f := range l.failures {
			t.Error(f)
		}
		for _, s := range l.created {
			created[s.ID] = s
		}
		for _, id := range l.ended {
			endedBy[id]++
		}
		for k, v := range l.subRevs {
			subRevs[k] = append(subRevs[k], v...)
		}
		for k := range l.sidRevs {
			sidRevs[k] = true
		}
		for _, s := range l.refused {
			if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Get of a session whose Create returned ErrRevoked: got %v, want ErrNotFound", err)
			}
		}
	}
	if len(created) == 0 || len(endedBy) == 0 {
		t.Fatalf("the workload created %d and ended %d sessions, want some of each", len(created), len(endedBy))
	}
	for id, n := range endedBy {
		if created[id] == nil {
			t.Errorf("session %s was ended but never created", id)
		}
		if n > 1 {
			t.Errorf("session %s was ended %d times, want once", id, n)
		}
	}

	// Every created session is either live or ended, never both; the live
	// ones are exactly what the indexes find.
	liveBySub := map[string][]string{}
	liveBySID := map[string][]string{}
	for id, s := range created {
		_, err := e.store.Get(ctx, id)
		live := err == nil
		if live == (endedBy[id] > 0) {
			t.Errorf("session %s: live=%v (Get: %v) but ended %d times", id, live, err, endedBy[id])
		}
		if !live {
			continue
		}
		liveBySub[s.Subject] = append(liveBySub[s.Subject], id)
		liveBySID[s.SID] = append(liveBySID[s.SID], id)
		if sidRevs[s.SID] {
			t.Errorf("session %s is live although its sid was revoked", id)
		}
		for _, at := range subRevs[s.Subject] {
			if !s.CreatedAt.After(at) {
				t.Errorf("session %s created at %v is live although its sub was revoked at %v", id, s.CreatedAt, at)
			}
		}
	}
	for i := range nsubs {
		for j := range nsids {
			got, err := e.store.List(ctx, session.Filter{App: app, SID: sid(i, j)})
			want := liveBySID[sid(i, j)]
			slices.Sort(want)
			if err != nil || !slices.Equal(ids(got), want) {
				t.Errorf("List by sid %s: got %v, %v, want %v", sid(i, j), ids(got), err, want)
			}
		}
		want := liveBySub[sub(i)]
		slices.Sort(want)
		got, err := e.store.List(ctx, session.Filter{App: app, Subject: sub(i)})
		if err != nil || !slices.Equal(ids(got), want) {
			t.Errorf("List by sub %s: got %v, %v, want %v", sub(i), ids(got), err, want)
		}
		got, err = e.store.RevokeSub(ctx, app, iss, sub(i), e.clock.Now())
		if err != nil || !slices.Equal(ids(got), want) {
			t.Errorf("final RevokeSub(%s): got %v, %v, want %v", sub(i), ids(got), err, want)
		}
	}
	if got, err := e.store.List(ctx, session.Filter{App: app}); err != nil || len(got) != 0 {
		t.Errorf("List after revoking every sub: got %v, %v, want none", ids(got), err)
	}
}
