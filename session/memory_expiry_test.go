package session

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// expiries records the sessions reported to OnExpire.
type expiries struct {
	mu  sync.Mutex
	ids []string
}

func (x *expiries) add(s *Session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ids = append(x.ids, s.ID)
}

func (x *expiries) get() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.ids)
}

func testSession(id, sub, sid string) *Session {
	return &Session{ID: id, App: "demo", Issuer: "https://idp.example", Subject: sub, SID: sid}
}

// TestMemoryStoreJanitor checks, on synctest's clock, that the janitor
// drops expired sessions and tombstones, calls OnExpire once per expired
// session and never for explicitly ended ones, and leaves no index behind.
func TestMemoryStoreJanitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var got expiries
		st := NewMemoryStore(MemoryConfig{
			Timeouts:        Timeouts{Idle: time.Minute, Absolute: time.Hour},
			CleanupInterval: time.Second,
			OnExpire:        got.add,
		})
		defer st.Close()
		for _, s := range []*Session{
			testSession("idle", "alice", "sid-1"),
			testSession("touched", "alice", "sid-2"),
			testSession("deleted", "bob", "sid-3"),
			testSession("by-sid", "carol", "sid-4"),
			testSession("by-sub", "dave", ""),
		} {
			if err := st.Create(ctx, s); err != nil {
				t.Fatalf("Create(%s): %v", s.ID, err)
			}
		}
		if _, err := st.Delete(ctx, "deleted"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := st.RevokeSID(ctx, "demo", "https://idp.example", "sid-4", "", time.Now()); err != nil {
			t.Fatalf("RevokeSID: %v", err)
		}
		if _, err := st.RevokeSub(ctx, "demo", "https://idp.example", "dave", time.Now()); err != nil {
			t.Fatalf("RevokeSub: %v", err)
		}

		time.Sleep(30 * time.Second)
		if err := st.Touch(ctx, "touched", time.Now()); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		time.Sleep(32 * time.Second) // idle expired at 60s; janitor ran at 61s
		synctest.Wait()
		if ids := got.get(); !slices.Equal(ids, []string{"idle"}) {
			t.Errorf("OnExpire after 62s: got %q, want [idle]", ids)
		}
		time.Sleep(30 * time.Second) // touched expired at 90s
		synctest.Wait()
		if ids := got.get(); !slices.Equal(ids, []string{"idle", "touched"}) {
			t.Errorf("OnExpire after 92s: got %q, want [idle touched]", ids)
		}

		st.mu.RLock()
		n, sids, subs, pairs := st.items.ItemCount(), len(st.bySID), len(st.bySub), len(st.pairs)
		st.mu.RUnlock()
		if n != 0 || sids != 0 || subs != 0 || pairs != 0 {
			t.Errorf("after every session ended: got %d items, %d sid keys, %d sub keys, %d pairs, want none", n, sids, subs, pairs)
		}
		if n := st.tombs.ItemCount(); n != 2 {
			t.Errorf("tombstones before the absolute timeout: got %d, want 2", n)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := st.tombs.ItemCount(); n != 0 {
			t.Errorf("tombstones after the absolute timeout: got %d, want 0", n)
		}
		if ids := got.get(); len(ids) != 2 {
			t.Errorf("OnExpire calls in total: got %q, want 2", ids)
		}
	})
}

// TestMemoryStoreClose checks that Close stops the janitor (synctest fails
// the test if a goroutine of its bubble outlives it) and is idempotent.
func TestMemoryStoreClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewMemoryStore(MemoryConfig{CleanupInterval: time.Second})
		time.Sleep(3 * time.Second)
		for i := range 2 {
			if err := st.Close(); err != nil {
				t.Errorf("Close #%d: %v", i+1, err)
			}
		}
		if err := st.Ping(context.Background()); err != nil {
			t.Errorf("Ping: got %v, want nil", err)
		}
	})
}

// TestMemoryStoreDefaults checks the documented zero values.
func TestMemoryStoreDefaults(t *testing.T) {
	st := NewMemoryStore(MemoryConfig{})
	defer st.Close()
	want := Timeouts{Idle: 30 * time.Minute, Absolute: 8 * time.Hour}
	if st.timeouts != want {
		t.Errorf("timeouts: got %+v, want %+v", st.timeouts, want)
	}
}
