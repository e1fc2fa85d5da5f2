package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// journal is what observers were told, in order.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(name string, cause Cause, s *Session) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf("%s %s %s", name, cause, s.ID))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// recorder is an Observer writing to a journal.
type recorder struct {
	name string
	j    *journal
}

func (r *recorder) SessionEnded(_ context.Context, cause Cause, s *Session) {
	r.j.add(r.name, cause, s)
}

// newTestManager returns a Manager over a MemoryStore with two observers
// writing to one log, and a buffer with its JSON audit log.
func newTestManager(t *testing.T) (*Manager, *journal, *bytes.Buffer) {
	t.Helper()
	st := NewMemoryStore(MemoryConfig{})
	t.Cleanup(func() { st.Close() })
	var buf bytes.Buffer
	m := NewManager(st, slog.New(slog.NewJSONHandler(&buf, nil)))
	j := &journal{}
	m.Observe(&recorder{name: "first", j: j})
	m.Observe(ObserverFunc(func(_ context.Context, cause Cause, s *Session) { j.add("second", cause, s) }))
	ctx := context.Background()
	for _, s := range []*Session{
		testSession("s1", "alice", "sid-1"),
		testSession("s2", "alice", "sid-1"),
		testSession("s3", "alice", "sid-2"),
		testSession("s4", "bob", "sid-3"),
	} {
		if err := m.Create(ctx, s); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	return m, j, &buf
}

func TestManagerEnd(t *testing.T) {
	const app, iss = "demo", "https://idp.example"
	tests := []struct {
		name    string
		end     func(context.Context, *Manager) ([]*Session, error)
		wantIDs []string
		wantLog []string
	}{
		{
			name: "End",
			end: func(ctx context.Context, m *Manager) ([]*Session, error) {
				s, err := m.End(ctx, "s3", CauseRPInitiated)
				return []*Session{s}, err
			},
			wantIDs: []string{"s3"},
			wantLog: []string{"first rp_initiated s3", "second rp_initiated s3"},
		},
		{
			name: "EndBySID",
			end: func(ctx context.Context, m *Manager) ([]*Session, error) {
				return m.EndBySID(ctx, app, iss, "sid-1", "", CauseFrontchannel)
			},
			wantIDs: []string{"s1", "s2"},
			wantLog: []string{"first frontchannel s1", "second frontchannel s1", "first frontchannel s2", "second frontchannel s2"},
		},
		{
			name: "EndBySID of another sub",
			end: func(ctx context.Context, m *Manager) ([]*Session, error) {
				return m.EndBySID(ctx, app, iss, "sid-1", "bob", CauseBackchannel)
			},
			wantIDs: []string{},
			wantLog: nil,
		},
		{
			name: "EndBySub",
			end: func(ctx context.Context, m *Manager) ([]*Session, error) {
				return m.EndBySub(ctx, app, iss, "alice", CauseBackchannel)
			},
			wantIDs: []string{"s1", "s2", "s3"},
			wantLog: []string{
				"first backchannel s1", "second backchannel s1",
				"first backchannel s2", "second backchannel s2",
				"first backchannel s3", "second backchannel s3",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, log, _ := newTestManager(t)
			ss, err := tt.end(context.Background(), m)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := ids(ss); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("ended sessions: got %q, want %q", got, tt.wantIDs)
			}
			if got := log.get(); !slices.Equal(got, tt.wantLog) {
				t.Errorf("observer calls: got %q, want %q", got, tt.wantLog)
			}
			for _, id := range tt.wantIDs {
				if _, err := m.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%s) after it ended: got %v, want ErrNotFound", id, err)
				}
			}
		})
	}
}

func ids(ss []*Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

func TestManagerEndUnknown(t *testing.T) {
	m, log, buf := newTestManager(t)
	if _, err := m.End(context.Background(), "nope", CauseAdmin); !errors.Is(err, ErrNotFound) {
		t.Errorf("End of an unknown id: got %v, want ErrNotFound", err)
	}
	if _, err := m.End(context.Background(), "s1", CauseAdmin); err != nil {
		t.Fatalf("End: %v", err)
	}
	if _, err := m.End(context.Background(), "s1", CauseAdmin); !errors.Is(err, ErrNotFound) {
		t.Errorf("second End: got %v, want ErrNotFound", err)
	}
	if got := log.get(); len(got) != 2 {
		t.Errorf("observer calls: got %q, want one per observer for s1", got)
	}
	if n := strings.Count(buf.String(), "session ended"); n != 1 {
		t.Errorf("audit records: got %d, want 1", n)
	}
}

func TestManagerAuditLog(t *testing.T) {
	m, _, buf := newTestManager(t)
	buf.Reset()
	ctx := context.Background()
	s := testSession("the-session-id", "the-subject", "the-sid")
	if err := m.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := m.End(ctx, s.ID, CauseAdmin); err != nil {
		t.Fatalf("End: %v", err)
	}
	for _, raw := range []string{s.ID, s.Subject, s.SID} {
		if strings.Contains(buf.String(), raw) {
			t.Errorf("audit log contains the raw value %q:\n%s", raw, buf)
		}
	}
	var recs []map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		delete(rec, "time")
		recs = append(recs, rec)
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "session started", "event": "session_started", "app": "demo", "cause": "login", "sid_hash": Hash(s.SID), "sub_hash": Hash(s.Subject), "session_hash": Hash(s.ID)},
		{"level": "INFO", "msg": "session ended", "event": "session_ended", "app": "demo", "cause": "admin", "sid_hash": Hash(s.SID), "sub_hash": Hash(s.Subject), "session_hash": Hash(s.ID)},
	}
	if len(recs) != len(want) {
		t.Fatalf("audit records: got %d, want %d:\n%s", len(recs), len(want), buf)
	}
	for i := range want {
		if fmt.Sprint(recs[i]) != fmt.Sprint(want[i]) {
			t.Errorf("audit record %d: got %v, want %v", i, recs[i], want[i])
		}
	}
}

// TestManagerExpired checks that NewManager wires itself into the
// MemoryStore, so that expiries reach the observers once, as CauseExpired,
// and explicitly ended sessions are not reported again as expired.
func TestManagerExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewMemoryStore(MemoryConfig{
			Timeouts:        Timeouts{Idle: time.Minute},
			CleanupInterval: time.Second,
		})
		defer st.Close()
		m := NewManager(st, nil)
		j := &journal{}
		m.Observe(&recorder{name: "obs", j: j})
		ctx := context.Background()
		for _, s := range []*Session{testSession("idle", "alice", "sid-1"), testSession("ended", "bob", "sid-2")} {
			if err := m.Create(ctx, s); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
		if _, err := m.End(ctx, "ended", CauseRPInitiated); err != nil {
			t.Fatalf("End: %v", err)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		want := []string{"obs rp_initiated ended", "obs expired idle"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Errorf("observer calls: got %q, want %q", got, want)
		}
	})
}

// TestManagerOwnsStore checks that nothing can end a session around the
// Manager: it exposes no way to remove a session without a cause, nor
// its store, nor a whole-copy Update.
func TestManagerOwnsStore(t *testing.T) {
	typ := reflect.TypeFor[*Manager]()
	for _, name := range []string{"Delete", "RevokeSID", "RevokeSub", "Update", "Store"} {
		if _, ok := typ.MethodByName(name); ok {
			t.Errorf("Manager has method %s: sessions could end (or be overwritten) without the observers", name)
		}
	}
	for f := range typ.Elem().Fields() {
		if f.IsExported() || f.Anonymous {
			t.Errorf("Manager has exported or embedded field %s", f.Name)
		}
	}
	st := NewMemoryStore(MemoryConfig{})
	defer st.Close()
	m := NewManager(st, nil)
	ctx := context.Background()
	if err := m.Create(ctx, testSession("s1", "alice", "")); err != nil {
		t.Fatalf("Create through the Manager: %v", err)
	}
	if _, err := st.Get(ctx, "s1"); err != nil {
		t.Errorf("Get from the store of a session created through the Manager: %v", err)
	}
}

// TestManagerEndNeedsCause: an end without a cause ends nothing.
func TestManagerEndNeedsCause(t *testing.T) {
	m, j, _ := newTestManager(t)
	ctx := context.Background()
	if _, err := m.End(ctx, "s1", ""); err == nil {
		t.Error("End without a cause: error = nil")
	}
	if _, err := m.EndBySID(ctx, "demo", "https://idp.example", "sid-1", "", ""); err == nil {
		t.Error("EndBySID without a cause: error = nil")
	}
	if _, err := m.EndBySub(ctx, "demo", "https://idp.example", "alice", ""); err == nil {
		t.Error("EndBySub without a cause: error = nil")
	}
	if _, err := m.Get(ctx, "s1"); err != nil {
		t.Errorf("s1 after the refused ends: %v", err)
	}
	if got := j.get(); len(got) != 0 {
		t.Errorf("observers told: %q, want nothing", got)
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"abc", "ba7816bf8f01cfea"},
	}
	for _, tt := range tests {
		if got := Hash(tt.in); got != tt.want {
			t.Errorf("Hash(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
