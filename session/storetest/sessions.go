package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// order returns the ids of ss in their order.
func order(ss []*session.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func testListSubject(t *testing.T, e *env) {
	ctx := context.Background()
	a, b, idp, idp2 := e.app("a"), e.app("b"), e.iss("idp"), e.iss("idp2")
	alice, bob := e.sub("alice"), e.sub("bob")
	s1 := e.mustCreate(t, a, idp, alice, e.sid("1"))
	e.clock.Advance(time.Second)
	s2 := e.mustCreate(t, a, idp, alice, "")
	e.clock.Advance(time.Second)
	s3 := e.mustCreate(t, a, idp, alice, e.sid("3"))
	e.mustCreate(t, a, idp, bob, e.sid("1"))
	e.mustCreate(t, b, idp, alice, e.sid("1"))
	e.mustCreate(t, a, idp2, alice, e.sid("1"))

	tests := []struct {
		name  string
		limit int
		want  []*session.Session
	}{
		{"all, newest first", 10, []*session.Session{s3, s2, s1}},
		{"capped", 2, []*session.Session{s3, s2}},
		{"one", 1, []*session.Session{s3}},
	}
	for _, tt := range tests {
		got, err := e.store.ListSubject(ctx, a, idp, alice, tt.limit)
		if err != nil {
			t.Fatalf("ListSubject(%s): %v", tt.name, err)
		}
		if !slices.Equal(order(got), order(tt.want)) {
			t.Errorf("ListSubject(%s): got %v, want %v", tt.name, order(got), order(tt.want))
		}
	}
	got, _ := e.store.ListSubject(ctx, a, idp, alice, 10)
	if len(got) == 3 {
		if d := diff(got[0], s3); d != "" {
			t.Errorf("ListSubject returned a different session: %s", d)
		}
	}
	if _, err := e.store.Delete(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.ListSubject(ctx, a, idp, alice, 10); !slices.Equal(order(got), order([]*session.Session{s3, s1})) {
		t.Errorf("ListSubject after Delete: got %v, want %v", order(got), []string{s3.ID, s1.ID})
	}
	if got, err := e.store.ListSubject(ctx, a, idp, e.sub("nobody"), 10); err != nil || len(got) != 0 {
		t.Errorf("ListSubject(unknown sub) = %v, %v, want none", order(got), err)
	}
	for _, bad := range [][3]string{{"", idp, alice}, {a, "", alice}, {a, idp, ""}} {
		if _, err := e.store.ListSubject(ctx, bad[0], bad[1], bad[2], 10); err == nil {
			t.Errorf("ListSubject(%q) = nil error, want one", bad)
		}
	}
	if _, err := e.store.ListSubject(ctx, a, idp, alice, 0); err == nil {
		t.Error("ListSubject(limit 0) = nil error, want one")
	}
}

// testListSubjectSkipsExpired: newer sessions that expired (their index
// entries can outlive them until the absolute timeout) do not hide older
// live ones.
func testListSubjectSkipsExpired(t *testing.T, e *env) {
	ctx := context.Background()
	a, idp, alice := e.app("a"), e.iss("idp"), e.sub("alice")
	old1 := e.mustCreate(t, a, idp, alice, "")
	e.clock.Advance(time.Second)
	old2 := e.mustCreate(t, a, idp, alice, "")
	touch := func() {
		t.Helper()
		now := e.clock.Now()
		for _, s := range []*session.Session{old1, old2} {
			if err := e.store.Touch(ctx, s.ID, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.clock.Advance(idle / 2)
	touch()
	for range 70 {
		e.mustCreate(t, a, idp, alice, "")
	}
	e.clock.Advance(idle / 2)
	touch()
	e.clock.Advance(idle/2 + time.Second) // the 70 newer ones are idle too long now
	got, err := e.store.ListSubject(ctx, a, idp, alice, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{old2.ID, old1.ID}; !slices.Equal(order(got), want) {
		t.Errorf("ListSubject = %v, want the two live ones %v", order(got), want)
	}
}
