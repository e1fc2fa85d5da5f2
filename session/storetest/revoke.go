package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// checkLive asserts which of the sessions Get still finds.
func checkLive(t *testing.T, e *env, want map[*session.Session]bool) {
	t.Helper()
	for s, live := range want {
		_, err := e.store.Get(context.Background(), s.ID)
		if got := err == nil; got != live {
			t.Errorf("Get(%s %s %s %s): got err %v, want live=%v", s.App, s.Issuer, s.Subject, s.SID, err, live)
		}
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Get: got %v, want nil or ErrNotFound", err)
		}
	}
}

func testRevokeSID(t *testing.T, e *env) {
	tests := []struct {
		name      string
		filterSub string // "alice", "bob" or "" (no filter)
		wantGone  []string
	}{
		{"all subs", "", []string{"alice1", "alice2", "bob"}},
		{"only alice", "alice", []string{"alice1", "alice2"}},
		{"sub without sessions", "carol", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e.ns = session.NewID()[:8] // fresh names: revocations leave tombstones
			app, iss, sid := e.app("a"), e.iss("idp"), e.sid("1")
			all := map[string]*session.Session{
				"alice1":     e.mustCreate(t, app, iss, e.sub("alice"), sid),
				"alice2":     e.mustCreate(t, app, iss, e.sub("alice"), sid),
				"bob":        e.mustCreate(t, app, iss, e.sub("bob"), sid),
				"other sid":  e.mustCreate(t, app, iss, e.sub("alice"), e.sid("2")),
				"no sid":     e.mustCreate(t, app, iss, e.sub("alice"), ""),
				"other app":  e.mustCreate(t, e.app("b"), iss, e.sub("alice"), sid),
				"other iss":  e.mustCreate(t, app, e.iss("idp2"), e.sub("alice"), sid),
				"sid as sub": e.mustCreate(t, app, iss, sid, e.sid("3")),
			}
			filter := ""
			if tt.filterSub != "" {
				filter = e.sub(tt.filterSub)
			}
			got, err := e.store.RevokeSID(ctx, app, iss, sid, filter, e.clock.Now())
			if err != nil {
				t.Fatalf("RevokeSID: %v", err)
			}
			var want []*session.Session
			live := map[*session.Session]bool{}
			for name, s := range all {
				gone := slices.Contains(tt.wantGone, name)
				live[s] = !gone
				if gone {
					want = append(want, s)
				}
			}
			if !slices.Equal(ids(got), ids(want)) {
				t.Errorf("RevokeSID returned %v, want %v", ids(got), ids(want))
			}
			for _, g := range got {
				if d := diff(g, all[nameOf(all, g.ID)]); d != "" {
					t.Errorf("RevokeSID returned a different session: %s", d)
				}
			}
			checkLive(t, e, live)
			again, err := e.store.RevokeSID(ctx, app, iss, sid, filter, e.clock.Now())
			if err != nil || len(again) != 0 {
				t.Errorf("second RevokeSID: got %v, %v, want none", ids(again), err)
			}
		})
	}
}

// nameOf returns the key of the session with that id.
func nameOf(m map[string]*session.Session, id string) string {
	for k, s := range m {
		if s.ID == id {
			return k
		}
	}
	return ""
}

func testRevokeSub(t *testing.T, e *env) {
	ctx := context.Background()
	app, iss, alice := e.app("a"), e.iss("idp"), e.sub("alice")
	mine := []*session.Session{
		e.mustCreate(t, app, iss, alice, e.sid("1")),
		e.mustCreate(t, app, iss, alice, e.sid("2")),
		e.mustCreate(t, app, iss, alice, ""),
	}
	others := []*session.Session{
		e.mustCreate(t, e.app("b"), iss, alice, e.sid("1")),
		e.mustCreate(t, app, e.iss("idp2"), alice, e.sid("1")),
		e.mustCreate(t, app, iss, e.sub("bob"), e.sid("3")),
		e.mustCreate(t, app, iss, e.sid("1"), e.sid("4")), // a sub equal to alice's sid
	}
	got, err := e.store.RevokeSub(ctx, app, iss, alice, e.clock.Now())
	if err != nil {
		t.Fatalf("RevokeSub: %v", err)
	}
	if !slices.Equal(ids(got), ids(mine)) {
		t.Errorf("RevokeSub returned %v, want %v", ids(got), ids(mine))
	}
	live := map[*session.Session]bool{}
	for _, s := range mine {
		live[s] = false
	}
	for _, s := range others {
		live[s] = true
	}
	checkLive(t, e, live)
	for _, s := range mine {
		if l, _ := e.store.List(ctx, session.Filter{SID: s.SID, Subject: s.Subject, App: app, Issuer: iss}); len(l) != 0 {
			t.Errorf("List after RevokeSub found %v, want none", ids(l))
		}
	}
}

func testSIDTombstone(t *testing.T, e *env) {
	ctx := context.Background()
	app, iss, alice := e.app("a"), e.iss("idp"), e.sub("alice")
	// A logout may arrive for a sid with no session (yet): it still counts.
	if _, err := e.store.RevokeSID(ctx, app, iss, e.sid("1"), "", e.clock.Now()); err != nil {
		t.Fatalf("RevokeSID: %v", err)
	}
	e.clock.Advance(time.Minute)
	tests := []struct {
		name     string
		app, iss string
		sub, sid string
		want     error
	}{
		{"revoked sid", app, iss, alice, e.sid("1"), session.ErrRevoked},
		{"revoked sid, another sub", app, iss, e.sub("bob"), e.sid("1"), session.ErrRevoked},
		{"another sid", app, iss, alice, e.sid("2"), nil},
		{"no sid", app, iss, alice, "", nil},
		{"same sid, another app", e.app("b"), iss, alice, e.sid("1"), nil},
		{"same sid, another issuer", app, e.iss("idp2"), alice, e.sid("1"), nil},
	}
	for _, tt := range tests {
		s := e.newSession(tt.app, tt.iss, tt.sub, tt.sid)
		err := e.store.Create(ctx, s)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Create (%s): got %v, want %v", tt.name, err, tt.want)
		}
		_, err = e.store.Get(ctx, s.ID)
		if stored := err == nil; stored != (tt.want == nil) {
			t.Errorf("Get after Create (%s): got err %v, want stored=%v", tt.name, err, tt.want == nil)
		}
	}
	// Tombstones last as long as the absolute timeout, no longer.
	e.clock.Advance(absolute)
	if err := e.store.Create(ctx, e.newSession(app, iss, alice, e.sid("1"))); err != nil {
		t.Errorf("Create after the tombstone's lifetime: got %v, want nil", err)
	}
}

func testSubTombstone(t *testing.T, e *env) {
	ctx := context.Background()
	app, iss, alice := e.app("a"), e.iss("idp"), e.sub("alice")
	before := e.mustCreate(t, app, iss, alice, e.sid("1"))
	revokedAt := e.clock.Advance(time.Minute)
	if _, err := e.store.RevokeSub(ctx, app, iss, alice, revokedAt); err != nil {
		t.Fatalf("RevokeSub: %v", err)
	}
	// A later logout carrying an older time (another replica's clock)
	// does not move the tombstone back.
	if _, err := e.store.RevokeSub(ctx, app, iss, alice, revokedAt.Add(-time.Hour)); err != nil {
		t.Fatalf("RevokeSub: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.store.Get(ctx, before.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get of a session created before RevokeSub: got %v, want ErrNotFound", err)
	}
	tests := []struct {
		name      string
		app       string
		sub       string
		createdAt time.Time
		want      error
	}{
		{"created before the logout", app, alice, revokedAt.Add(-time.Second), session.ErrRevoked},
		{"created at the logout", app, alice, revokedAt, session.ErrRevoked},
		{"created after the logout", app, alice, revokedAt.Add(time.Second), nil},
		{"another sub, created before", app, e.sub("bob"), revokedAt.Add(-time.Second), nil},
		{"another app, created before", e.app("b"), alice, revokedAt.Add(-time.Second), nil},
	}
	for _, tt := range tests {
		s := e.newSession(tt.app, iss, tt.sub, e.sid(tt.name))
		s.CreatedAt, s.LastSeen = tt.createdAt, tt.createdAt
		err := e.store.Create(ctx, s)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Create (%s): got %v, want %v", tt.name, err, tt.want)
		}
		_, err = e.store.Get(ctx, s.ID)
		if usable := err == nil; usable != (tt.want == nil) {
			t.Errorf("Get after Create (%s): got err %v, want usable=%v", tt.name, err, tt.want == nil)
		}
	}
}

func testList(t *testing.T, e *env) {
	ctx := context.Background()
	a, b, idp, idp2 := e.app("a"), e.app("b"), e.iss("idp"), e.iss("idp2")
	alice, bob := e.sub("alice"), e.sub("bob")
	s1 := e.mustCreate(t, a, idp, alice, e.sid("1"))
	e.clock.Advance(time.Second)
	s2 := e.mustCreate(t, a, idp, alice, e.sid("2"))
	s3 := e.mustCreate(t, a, idp, bob, e.sid("3"))
	s4 := e.mustCreate(t, b, idp, alice, e.sid("1"))
	s5 := e.mustCreate(t, a, idp2, alice, e.sid("1"))
	s6 := e.mustCreate(t, b, idp2, bob, "")
	tests := []struct {
		name string
		f    session.Filter
		want []*session.Session
	}{
		{"app", session.Filter{App: a}, []*session.Session{s1, s2, s3, s5}},
		{"app and issuer", session.Filter{App: a, Issuer: idp}, []*session.Session{s1, s2, s3}},
		{"sub", session.Filter{Subject: alice}, []*session.Session{s1, s2, s4, s5}},
		{"app and sub", session.Filter{App: a, Subject: alice}, []*session.Session{s1, s2, s5}},
		{"app, issuer and sub", session.Filter{App: b, Issuer: idp2, Subject: bob}, []*session.Session{s6}},
		{"sid", session.Filter{SID: e.sid("1")}, []*session.Session{s1, s4, s5}},
		{"app and sid", session.Filter{App: a, SID: e.sid("1")}, []*session.Session{s1, s5}},
		{"sid and sub", session.Filter{SID: e.sid("3"), Subject: bob}, []*session.Session{s3}},
		{"sid and another sub", session.Filter{SID: e.sid("3"), Subject: alice}, nil},
		{"unknown app", session.Filter{App: e.app("c")}, nil},
	}
	for _, tt := range tests {
		got, err := e.store.List(ctx, tt.f)
		if err != nil {
			t.Errorf("List(%s): %v", tt.name, err)
			continue
		}
		if !slices.Equal(ids(got), ids(tt.want)) {
			t.Errorf("List(%s): got %v, want %v", tt.name, ids(got), ids(tt.want))
		}
	}
	// Oldest first.
	if got, _ := e.store.List(ctx, session.Filter{App: a, Subject: alice, Issuer: idp}); len(got) != 2 || got[0].ID != s1.ID {
		t.Errorf("List order: got %v, want %s (the oldest) first", ids(got), s1.ID)
	}
	for _, f := range []session.Filter{{}, {Issuer: idp}} {
		if _, err := e.store.List(ctx, f); err == nil {
			t.Errorf("List(%+v): got nil error, want one (it would list every session)", f)
		}
	}
	// Expired sessions are not listed.
	e.clock.Advance(idle + time.Second)
	if got, err := e.store.List(ctx, session.Filter{App: a}); err != nil || len(got) != 0 {
		t.Errorf("List after expiry: got %v, %v, want none", ids(got), err)
	}
}
