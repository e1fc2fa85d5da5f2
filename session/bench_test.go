package session

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const benchIssuer = "https://idp.example.com/realms/demo"

// benchClock is a fake clock benchmarks advance to get past tombstones.
type benchClock struct{ ns atomic.Int64 }

func newBenchClock() *benchClock {
	c := &benchClock{}
	c.ns.Store(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *benchClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func (c *benchClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// uuid returns a random UUID-shaped string, like Keycloak's subs and sids.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// benchSession returns an idle session with realistic identifiers and no
// tokens. The issuer is a fresh string, as if parsed from an ID token.
func benchSession(sub string) *Session {
	return &Session{
		ID:      NewID(),
		App:     "demo",
		Issuer:  strings.Clone(benchIssuer),
		Subject: sub,
		SID:     uuid(),
	}
}

func BenchmarkMemoryGet(b *testing.B) {
	st := NewMemoryStore(MemoryConfig{})
	defer st.Close()
	ctx := context.Background()
	ids := make([]string, 10_000)
	for i := range ids {
		s := benchSession(uuid())
		s.AccessToken = strings.Repeat("a", 800)
		s.Upstreams = []string{"api"}
		if err := st.Create(ctx, s); err != nil {
			b.Fatal(err)
		}
		ids[i] = s.ID
	}
	var seed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if _, err := st.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCookieDecode(b *testing.B) {
	c, err := NewCookieCodec(CookieConfig{Secret: strings.Repeat("s", 32), Secure: true})
	if err != nil {
		b.Fatal(err)
	}
	id := NewID()
	ck, err := c.Encode("demo", id)
	if err != nil {
		b.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodGet, "/api/orders", nil)
	r.Header.Set("Cookie", "_ga=GA1.1.123; theme=dark; "+ck.String())
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.Decode(r, "demo")
		if err != nil || got != id {
			b.Fatalf("Decode: got %q, %v", got, err)
		}
	}
}

// BenchmarkRevokeBySub measures revoking the 100 sessions of one sub among
// total sessions; the cost should not depend on total. The victims are
// re-created, with the timer stopped, for batch subs at a time, since each
// StopTimer/StartTimer pair costs a stop-the-world ReadMemStats.
func BenchmarkRevokeBySub(b *testing.B) {
	const perSub, batch = 100, 20
	for _, total := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("total=%s", count(total)), func(b *testing.B) {
			clk := newBenchClock()
			st := NewMemoryStore(MemoryConfig{Now: clk.Now})
			defer st.Close()
			ctx := context.Background()
			for range total - batch*perSub {
				if err := st.Create(ctx, benchSession(uuid())); err != nil {
					b.Fatal(err)
				}
			}
			subs := make([]string, batch)
			victims := make([]*Session, batch*perSub)
			for i := range victims {
				if i%perSub == 0 {
					subs[i/perSub] = uuid()
				}
				victims[i] = benchSession(subs[i/perSub])
			}
			refill := func() {
				clk.Advance(time.Millisecond) // past the last tombstones
				for _, s := range victims {
					s.CreatedAt, s.LastSeen = time.Time{}, time.Time{}
					if err := st.Create(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%batch == 0 {
					b.StopTimer()
					refill()
					b.StartTimer()
				}
				ss, err := st.RevokeSub(ctx, "demo", benchIssuer, subs[i%batch], clk.Now())
				if err != nil || len(ss) != perSub {
					b.Fatalf("RevokeSub: got %d sessions, %v, want %d", len(ss), err, perSub)
				}
				i++
			}
		})
	}
}

func count(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1_000)
}

// BenchmarkMemoryHeapPerSession reports the live heap per idle session
// (realistic ids, subs and sids; no tokens or claims) with 100k sessions,
// everything the store keeps counted: entry, go-cache slot, index slots,
// strings.
func BenchmarkMemoryHeapPerSession(b *testing.B) {
	const n = 100_000
	var perSession float64
	for b.Loop() {
		perSession = heapPerSession(b, n)
	}
	b.ReportMetric(perSession, "B/session")
}

func heapPerSession(b *testing.B, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := NewMemoryStore(MemoryConfig{})
	ctx := context.Background()
	for range n {
		if err := st.Create(ctx, benchSession(uuid())); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(st)
	st.Close()
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
