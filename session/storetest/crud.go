package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

func testCreateGet(t *testing.T, e *env) {
	ctx := context.Background()
	want := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	noSID := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), "")
	for _, w := range []*session.Session{want, noSID} {
		got, err := e.store.Get(ctx, w.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if d := diff(got, w); d != "" {
			t.Errorf("Get returned a different session: %s", d)
		}
		if got == w {
			t.Errorf("Get returned the caller's pointer, want a copy")
		}
	}
}

func testCopies(t *testing.T, e *env) {
	ctx := context.Background()
	in := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	want := in.Clone()
	check := func(step string) {
		t.Helper()
		got, err := e.store.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get after %s: %v", step, err)
		}
		if d := diff(got, want); d != "" {
			t.Errorf("%s changed the stored session: %s", step, d)
		}
	}
	mutate := func(s *session.Session) {
		s.AccessToken = "changed"
		s.Claims[0] = 'X'
		s.Upstreams[0] = "changed"
		s.AddUpstream("zzz")
	}

	mutate(in)
	check("mutating the value passed to Create")

	got, err := e.store.Get(ctx, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	mutate(got)
	check("mutating a value returned by Get")

	upd := want.Clone()
	upd.AccessToken = "access-2"
	upd.Upstreams = []string{"api", "billing"}
	if err := e.store.Update(ctx, upd); err != nil {
		t.Fatalf("Update: %v", err)
	}
	want.AccessToken = "access-2"
	want.Upstreams = []string{"api", "billing"}
	mutate(upd)
	check("mutating the value passed to Update")
}

func testUnknownID(t *testing.T, e *env) {
	ctx := context.Background()
	unknown := e.newSession(e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := e.store.Get(ctx, unknown.ID); return err }},
		{"Touch", func() error { return e.store.Touch(ctx, unknown.ID, e.clock.Now()) }},
		{"Update", func() error { return e.store.Update(ctx, unknown) }},
		{"Delete", func() error { _, err := e.store.Delete(ctx, unknown.ID); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s of an unknown id: got %v, want ErrNotFound", c.name, err)
		}
	}
	if _, err := e.store.Get(ctx, unknown.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Update of an unknown id: got %v, want ErrNotFound (Update must not create)", err)
	}
}

func testCreateRejects(t *testing.T, e *env) {
	ctx := context.Background()
	existing := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	tests := []struct {
		name   string
		modify func(*session.Session)
	}{
		{"no id", func(s *session.Session) { s.ID = "" }},
		{"no app", func(s *session.Session) { s.App = "" }},
		{"no issuer", func(s *session.Session) { s.Issuer = "" }},
		{"no subject", func(s *session.Session) { s.Subject = "" }},
		{"id in use", func(s *session.Session) { s.ID = existing.ID }},
		{"already expired", func(s *session.Session) {
			s.CreatedAt = s.CreatedAt.Add(-2 * absolute)
			s.LastSeen = s.CreatedAt
		}},
	}
	for _, tt := range tests {
		s := e.newSession(e.app("a"), e.iss("idp"), e.sub("bob"), e.sid("2"))
		tt.modify(s)
		err := e.store.Create(ctx, s)
		if err == nil || errors.Is(err, session.ErrRevoked) {
			t.Errorf("Create with %s: got %v, want an error other than ErrRevoked", tt.name, err)
		}
	}
	got, err := e.store.Get(ctx, existing.ID)
	if err != nil {
		t.Fatalf("Get of the existing session: %v", err)
	}
	if d := diff(got, existing); d != "" {
		t.Errorf("a refused Create with the same id changed the existing session: %s", d)
	}
	if got, _ := e.store.List(ctx, session.Filter{App: e.app("a")}); len(got) != 1 {
		t.Errorf("List after refused Creates: got %d sessions, want 1", len(got))
	}
}

func testCreateDefaultsTimes(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.newSession(e.app("a"), e.iss("idp"), e.sub("alice"), "")
	s.CreatedAt, s.LastSeen = time.Time{}, time.Time{}
	now := e.clock.Now()
	if err := e.store.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := e.store.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.CreatedAt.Equal(now) || !got.LastSeen.Equal(now) {
		t.Errorf("zero times: got CreatedAt %v, LastSeen %v, want both %v", got.CreatedAt, got.LastSeen, now)
	}
}

func testUpdate(t *testing.T, e *env) {
	ctx := context.Background()
	orig := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	now := e.clock.Advance(time.Minute)

	upd := orig.Clone()
	upd.IDToken = "id-token-2"
	upd.Claims = json.RawMessage(`{"sub":"x","name":"Grace"}`)
	upd.AccessToken = "access-2"
	upd.RefreshToken = "refresh-2"
	upd.TokenExpiry = now.Add(time.Hour)
	upd.SessionState = "state-2"
	upd.LastSeen = now
	upd.Upstreams = []string{"billing"}
	// Fixed at Create: Update must ignore these.
	upd.App, upd.Issuer, upd.Subject, upd.SID = "other", "other", "other", "other"
	upd.CreatedAt = now

	if err := e.store.Update(ctx, upd); err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := upd.Clone()
	want.App, want.Issuer, want.Subject, want.SID = orig.App, orig.Issuer, orig.Subject, orig.SID
	want.CreatedAt = orig.CreatedAt
	got, err := e.store.Get(ctx, orig.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("after Update: %s", d)
	}
	// The indexes still find it under its original identity.
	if got, _ := e.store.List(ctx, session.Filter{App: orig.App, SID: orig.SID}); len(got) != 1 {
		t.Errorf("List by the original sid after Update: got %d sessions, want 1", len(got))
	}
}

func testIdleExpiry(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	steps := []struct {
		advance time.Duration
		touch   bool // Touch now, then out of order with older times
		live    bool
	}{
		{idle - time.Minute, true, true},  // 9m, touched: idle expiry now 19m
		{idle - time.Minute, false, true}, // 18m: alive only because of the touch
		{2 * time.Minute, false, false},   // 20m: past 19m
	}
	for i, st := range steps {
		now := e.clock.Advance(st.advance)
		if st.touch {
			if err := e.store.Touch(ctx, s.ID, now); err != nil {
				t.Fatalf("step %d: Touch: %v", i, err)
			}
			// Neither a late Touch nor an Update carrying a stale LastSeen
			// may move LastSeen back.
			if err := e.store.Touch(ctx, s.ID, s.CreatedAt); err != nil {
				t.Fatalf("step %d: Touch: %v", i, err)
			}
			if err := e.store.Update(ctx, s); err != nil {
				t.Fatalf("step %d: Update: %v", i, err)
			}
		}
		_, err := e.store.Get(ctx, s.ID)
		if live := err == nil; live != st.live {
			t.Fatalf("step %d (%v after creation): Get: got err %v, want live=%v", i, now.Sub(s.CreatedAt), err, st.live)
		}
	}
	if err := e.store.Touch(ctx, s.ID, e.clock.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Touch after idle expiry: got %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Touch of an expired session: got %v, want ErrNotFound (Touch must not revive)", err)
	}
}

func testAbsoluteExpiry(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	// Touch every 5 minutes until just before the absolute timeout.
	for e.clock.Now().Sub(s.CreatedAt) < absolute-5*time.Minute {
		now := e.clock.Advance(5 * time.Minute)
		if err := e.store.Touch(ctx, s.ID, now); err != nil {
			t.Fatalf("Touch at %v: %v", now.Sub(s.CreatedAt), err)
		}
	}
	if _, err := e.store.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get at %v: %v", e.clock.Now().Sub(s.CreatedAt), err)
	}
	e.clock.Advance(5*time.Minute + time.Second)
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get just past the absolute timeout of a session touched 5m ago: got %v, want ErrNotFound", err)
	}
	upd := s.Clone()
	upd.LastSeen = e.clock.Now()
	if err := e.store.Update(ctx, upd); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Update after absolute expiry: got %v, want ErrNotFound", err)
	}
}

// checkGone asserts that nothing finds s any more: Get, Touch, Update,
// Delete, List by app, sub and sid, RevokeSID and RevokeSub.
func checkGone(t *testing.T, e *env, s *session.Session) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get: got %v, want ErrNotFound", err)
	}
	if err := e.store.Touch(ctx, s.ID, e.clock.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Touch: got %v, want ErrNotFound", err)
	}
	if err := e.store.Update(ctx, s); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Update: got %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Touch and Update: got %v, want ErrNotFound (no resurrection)", err)
	}
	for _, f := range []session.Filter{{App: s.App}, {Subject: s.Subject}, {SID: s.SID}, {App: s.App, Issuer: s.Issuer, Subject: s.Subject}} {
		if got, err := e.store.List(ctx, f); err != nil || len(got) != 0 {
			t.Errorf("List(%+v): got %v, %v, want none", f, ids(got), err)
		}
	}
	if got, err := e.store.RevokeSID(ctx, s.App, s.Issuer, s.SID, "", e.clock.Now()); err != nil || len(got) != 0 {
		t.Errorf("RevokeSID: got %v, %v, want none", ids(got), err)
	}
	if got, err := e.store.RevokeSub(ctx, s.App, s.Issuer, s.Subject, e.clock.Now()); err != nil || len(got) != 0 {
		t.Errorf("RevokeSub: got %v, %v, want none", ids(got), err)
	}
	if _, err := e.store.Delete(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Delete: got %v, want ErrNotFound", err)
	}
}

func testExpiredLeavesNoTrace(t *testing.T, e *env) {
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	e.clock.Advance(idle + time.Second)
	checkGone(t, e, s)
}

func testDelete(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	other := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("2"))
	got, err := e.store.Delete(ctx, s.ID)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if d := diff(got, s); d != "" {
		t.Errorf("Delete returned a different session: %s", d)
	}
	if _, err := e.store.Get(ctx, other.ID); err != nil {
		t.Errorf("Get of another session of the same sub after Delete: %v", err)
	}
	if _, err := e.store.Delete(ctx, other.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Delete leaves no tombstone: the same sid and sub can log in again.
	again := e.newSession(s.App, s.Issuer, s.Subject, s.SID)
	if err := e.store.Create(ctx, again); err != nil {
		t.Fatalf("Create after Delete with the same sid and sub: got %v, want nil", err)
	}
	if _, err := e.store.Delete(ctx, again.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkGone(t, e, s)
	checkGone(t, e, other)
}
