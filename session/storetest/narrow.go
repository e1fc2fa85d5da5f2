package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// testMarkUpstream: MarkUpstream adds one name, keeps the list sorted and
// without duplicates, changes no other field (not even tokens a
// concurrent refresh just wrote), and never resurrects a session.
func testMarkUpstream(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	// A refresh replaced the tokens after the caller's copy was read.
	newer := session.Tokens{AccessToken: "access-2", RefreshToken: "refresh-2", Expiry: e.clock.Now().Add(time.Hour), Issued: e.clock.Now(), TokenType: "DPoP"}
	if _, ok, err := e.store.ReplaceTokens(ctx, s.ID, s.RefreshToken, newer); err != nil || !ok {
		t.Fatalf("ReplaceTokens: got %v, %v; want true, nil", ok, err)
	}
	for _, name := range []string{"billing", "api", "zeta", "billing"} {
		if err := e.store.MarkUpstream(ctx, s.ID, name); err != nil {
			t.Fatalf("MarkUpstream(%s): %v", name, err)
		}
	}
	want := s.Clone()
	want.AccessToken, want.RefreshToken, want.TokenExpiry, want.TokenIssued = newer.AccessToken, newer.RefreshToken, newer.Expiry, newer.Issued
	want.Upstreams = []string{"api", "billing", "orders", "zeta"}
	got, err := e.store.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("after MarkUpstream: %s", d)
	}
	if _, err := e.store.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := e.store.MarkUpstream(ctx, s.ID, "late"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("MarkUpstream of a deleted session: got %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after MarkUpstream of a deleted session: got %v, want ErrNotFound", err)
	}
}

// testReplaceTokens: the compare-and-set writes the tokens only if the
// stored refresh token is the one the refresh started from; otherwise it
// returns the stored session with its newer tokens.
func testReplaceTokens(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	exp := e.clock.Now().Add(time.Hour)
	first := session.Tokens{AccessToken: "access-2", RefreshToken: "refresh-2", Expiry: exp, Issued: e.clock.Now(), TokenType: "Bearer",
		Claims: json.RawMessage(`{"sub":"alice","name":"Ada B."}`)} // e.g. userinfo after a refresh
	got, ok, err := e.store.ReplaceTokens(ctx, s.ID, s.RefreshToken, first)
	if err != nil || !ok {
		t.Fatalf("ReplaceTokens from the stored refresh token: got %v, %v; want true, nil", ok, err)
	}
	want := s.Clone()
	want.AccessToken, want.RefreshToken, want.TokenExpiry, want.TokenIssued = first.AccessToken, first.RefreshToken, first.Expiry, first.Issued
	want.Claims, want.TokenType = first.Claims, first.TokenType // the DPoP key stays
	if d := diff(got, want); d != "" {
		t.Errorf("returned session: %s", d)
	}
	// A second refresh that started from the old token loses.
	stale := session.Tokens{AccessToken: "access-3", RefreshToken: "refresh-3", Expiry: exp}
	got, ok, err = e.store.ReplaceTokens(ctx, s.ID, s.RefreshToken, stale)
	if err != nil || ok {
		t.Fatalf("ReplaceTokens from a replaced refresh token: got %v, %v; want false, nil", ok, err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("returned session after a lost race: %s", d)
	}
	if got, err := e.store.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get: %v", err)
	} else if d := diff(got, want); d != "" {
		t.Errorf("stored session: %s", d)
	}
	if _, err := e.store.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := e.store.ReplaceTokens(ctx, s.ID, first.RefreshToken, stale); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("ReplaceTokens of a deleted session: got %v, want ErrNotFound", err)
	}
}

// testReplaceTokensConcurrent: of many refreshes racing from one token,
// exactly one wins, and concurrent MarkUpstream calls lose nothing.
func testReplaceTokensConcurrent(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			rt := fmt.Sprintf("refresh-%d", i)
			_, ok, err := e.store.ReplaceTokens(ctx, s.ID, s.RefreshToken, session.Tokens{AccessToken: "a", RefreshToken: rt})
			err = errors.Join(err, e.store.MarkUpstream(ctx, s.ID, fmt.Sprintf("up-%d", i)))
			mu.Lock()
			defer mu.Unlock()
			if ok {
				wins = append(wins, rt)
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(wins) != 1 {
		t.Fatalf("winning refreshes: got %q, want exactly one", wins)
	}
	got, err := e.store.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.RefreshToken != wins[0] {
		t.Errorf("stored refresh token: got %q, want the winner's %q", got.RefreshToken, wins[0])
	}
	if len(got.Upstreams) != 2+n {
		t.Errorf("upstreams: got %q, want the 2 created with and %d marked", got.Upstreams, n)
	}
}

// testCount: Count sees the app's live sessions only.
func testCount(t *testing.T, e *env) {
	ctx := context.Background()
	app, other := e.app("a"), e.app("b")
	count := func(app string) int {
		t.Helper()
		n, err := e.store.Count(ctx, app)
		if err != nil {
			t.Fatalf("Count(%s): %v", app, err)
		}
		return n
	}
	if n := count(app); n != 0 {
		t.Errorf("Count of an app without sessions: got %d, want 0", n)
	}
	s1 := e.mustCreate(t, app, e.iss("idp"), e.sub("alice"), e.sid("1"))
	e.mustCreate(t, app, e.iss("idp2"), e.sub("bob"), "")
	e.mustCreate(t, other, e.iss("idp"), e.sub("alice"), e.sid("2"))
	if n := count(app); n != 2 {
		t.Errorf("Count: got %d, want 2", n)
	}
	if _, err := e.store.Delete(ctx, s1.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := count(app); n != 1 {
		t.Errorf("Count after Delete: got %d, want 1", n)
	}
	e.clock.Advance(idle + time.Second)
	if n := count(app); n != 0 {
		t.Errorf("Count after the idle timeout: got %d, want 0", n)
	}
	if n := count(other); n != 0 {
		t.Errorf("Count of the other app after the idle timeout: got %d, want 0", n)
	}
}

// testClaimRefresh: one claim per version of the tokens, until its ttl.
func testClaimRefresh(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.mustCreate(t, e.app("a"), e.iss("idp"), e.sub("alice"), e.sid("1"))
	claim := func(want bool, what string) {
		t.Helper()
		got, err := e.store.ClaimRefresh(ctx, s.ID, time.Minute)
		if err != nil || got != want {
			t.Errorf("ClaimRefresh %s: got %v, %v; want %v, nil", what, got, err, want)
		}
	}
	claim(true, "of a fresh session")
	claim(false, "while claimed")
	// A Touch does not change the tokens: the claim holds.
	if err := e.store.Touch(ctx, s.ID, e.clock.Advance(time.Second)); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	claim(false, "after a Touch")
	if _, ok, err := e.store.ReplaceTokens(ctx, s.ID, s.RefreshToken, session.Tokens{AccessToken: "a2", RefreshToken: "r2"}); err != nil || !ok {
		t.Fatalf("ReplaceTokens: %v, %v", ok, err)
	}
	claim(true, "of the new tokens")
	claim(false, "of the new tokens again")
	if err := e.store.ReleaseRefresh(ctx, s.ID); err != nil {
		t.Fatalf("ReleaseRefresh: %v", err)
	}
	claim(true, "after ReleaseRefresh")
	e.clock.Advance(time.Minute + time.Second)
	claim(true, "after the claim lapsed")
	if _, err := e.store.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.store.ClaimRefresh(ctx, s.ID, time.Minute); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("ClaimRefresh of a deleted session: got %v, want ErrNotFound", err)
	}
	if err := e.store.ReleaseRefresh(ctx, s.ID); err != nil {
		t.Errorf("ReleaseRefresh of a deleted session: %v", err)
	}
	if _, err := e.store.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after ClaimRefresh of a deleted session: got %v, want ErrNotFound", err)
	}
}
