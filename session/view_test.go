package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// getOnly hides a store's View, so that Manager.View takes its fallback.
type getOnly struct{ Store }

// TestManagerView checks the request path's view of a session, from the
// memory store and from a store without View: every field but Claims,
// and adding an upstream to it changes nothing stored.
func TestManagerView(t *testing.T) {
	ctx := context.Background()
	for name, wrap := range map[string]func(Store) Store{
		"memory":   func(s Store) Store { return s },
		"fallback": func(s Store) Store { return getOnly{s} },
	} {
		t.Run(name, func(t *testing.T) {
			st := NewMemoryStore(MemoryConfig{})
			t.Cleanup(func() { st.Close() })
			m := NewManager(wrap(st), nil)
			s := testSession("v1", "alice", "sid-1")
			s.Claims = json.RawMessage(`{"name":"Alice"}`)
			s.AccessToken = "at"
			if err := m.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			for _, up := range []string{"b", "d"} {
				if err := m.MarkUpstream(ctx, s.ID, up); err != nil {
					t.Fatal(err)
				}
			}
			v, err := m.View(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if v.Claims != nil || v.AccessToken != "at" || v.Subject != "alice" || !slices.Equal(v.Upstreams, []string{"b", "d"}) {
				t.Fatalf("view = %+v", v)
			}
			v.AddUpstream("c")
			got, err := m.Get(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Upstreams, []string{"b", "d"}) || string(got.Claims) != `{"name":"Alice"}` {
				t.Fatalf("stored session changed through its view: %+v", got)
			}
			if _, err := m.View(ctx, "gone"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("View of a missing session: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestMemoryViewAllocs guards the memory store's view: one allocation
// (the copy of the session), no copy of its claims or upstreams.
func TestMemoryViewAllocs(t *testing.T) {
	ctx := context.Background()
	st := NewMemoryStore(MemoryConfig{})
	t.Cleanup(func() { st.Close() })
	s := testSession("v1", "alice", "sid-1")
	s.Claims = json.RawMessage(`{"name":"Alice"}`)
	s.Upstreams = []string{"api"}
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = st.View(ctx, s.ID) }); n != 1 {
		t.Errorf("MemoryStore.View: %v allocs, want 1", n)
	}
}
