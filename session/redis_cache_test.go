package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
)

// commandCounter is a go-redis hook counting the commands (and
// pipelines) that go to Redis, but not the pub/sub traffic of the
// store's invalidation channel (PUBLISH of heartbeats and acks).
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := strings.ToLower(cmd.Name()); name != "publish" && !strings.Contains(name, "subscribe") && name != "ping" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// roundTrips returns how many commands go to Redis while f runs.
func (c *commandCounter) roundTrips(f func()) int64 {
	before := c.n.Load()
	f()
	return c.n.Load() - before
}

// TestRedisCacheRoundTrips counts the Redis round trips of authenticated
// reads of a hot session: once the store's invalidation channel is up,
// reading the same session again costs none (it used to cost one HMGET
// and a decryption every time).
func TestRedisCacheRoundTrips(t *testing.T) {
	ctx := context.Background()
	rdb := newRedisClient(t, nil)
	cc := &commandCounter{}
	rdb.AddHook(cc)
	st := newRedisStore(t, rdb, session.RedisConfig{Cache: session.CacheConfig{TTL: session.DefaultCacheTTL}})
	s := &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "sid-1",
		AccessToken: "at", RefreshToken: "rt", Claims: []byte(`{"sub":"alice"}`)}
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	// The cache is used once the store's invalidation channel is known
	// to work: poll until a read costs no round trip.
	var getErr error
	if err := proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		n := cc.roundTrips(func() { _, getErr = st.Get(ctx, s.ID) })
		if getErr != nil || n == 0 {
			return nil // stop: failed, or done
		}
		return fmt.Errorf("every Get of a hot session still costs %d Redis round trips after 5 s", n)
	}); err != nil {
		t.Fatal(err)
	}
	if getErr != nil {
		t.Fatal(getErr)
	}
	const reads = 100
	var bad error
	n := cc.roundTrips(func() {
		for range reads {
			got, err := st.Get(ctx, s.ID)
			if err != nil || got.AccessToken != "at" || string(got.Claims) != `{"sub":"alice"}` {
				bad = errors.Join(bad, err)
			}
		}
	})
	if bad != nil {
		t.Fatal(bad)
	}
	// The entries live at most a second: a slow machine may read once
	// more.
	if n > 2 {
		t.Errorf("%d Gets of a hot session: %d Redis round trips, want at most 2", reads, n)
	}
	t.Logf("%d Gets of a hot session: %d Redis round trips", reads, n)
}

// cacheCount returns the store's bffgate_session_cache_lookups_total of
// result from reg.
func cacheCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bffgate_session_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// cacheHealthy reports the store's bffgate_session_cache_healthy.
func cacheHealthy(t *testing.T, reg *prometheus.Registry) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "bffgate_session_cache_healthy" {
			return mf.GetMetric()[0].GetGauge().GetValue() == 1
		}
	}
	t.Fatal("no bffgate_session_cache_healthy")
	return false
}

// cachedReplica is a RedisStore with its own client and registry: one
// replica.
type cachedReplica struct {
	st  *session.RedisStore
	reg *prometheus.Registry
}

func newCachedReplica(t *testing.T, rdb redis.UniversalClient, ttl time.Duration) *cachedReplica {
	t.Helper()
	reg := prometheus.NewRegistry()
	st := newRedisStore(t, rdb, session.RedisConfig{Registerer: reg, Cache: session.CacheConfig{TTL: ttl}})
	return &cachedReplica{st: st, reg: reg}
}

// cached reads s on r until the read is a cache hit (the channel must be
// up), failing t after 10 s.
func (r *cachedReplica) cached(t *testing.T, s *session.Session) {
	t.Helper()
	var got *session.Session
	var getErr error
	if err := proctest.Eventually(10*time.Second, 5*time.Millisecond, func() error {
		hits := cacheCount(t, r.reg, "hit")
		got, getErr = r.st.Get(context.Background(), s.ID)
		if getErr != nil || got.AccessToken != s.AccessToken || cacheCount(t, r.reg, "hit") > hits {
			return nil // stop: failed, or a hit
		}
		return fmt.Errorf("no cache hit within 10 s (healthy %v)", cacheHealthy(t, r.reg))
	}); err != nil {
		t.Fatal(err)
	}
	if getErr != nil || got.AccessToken != s.AccessToken {
		t.Fatalf("Get %v, %v; want the session", got, getErr)
	}
}

// replicaWrites are the writes of one replica that end or replace a
// session; each returns what the other replica must see next: nil for
// ErrNotFound, else the session with its new tokens.
var replicaWrites = []struct {
	name  string
	write func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error)
}{
	{"Delete", func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error) {
		_, err := st.Delete(ctx, s.ID)
		return nil, err
	}},
	{"RevokeSID", func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error) {
		_, err := st.RevokeSID(ctx, s.App, s.Issuer, s.SID, "", time.Now())
		return nil, err
	}},
	{"RevokeSub", func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error) {
		_, err := st.RevokeSub(ctx, s.App, s.Issuer, s.Subject, time.Now())
		return nil, err
	}},
	{"ReplaceTokens", func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error) {
		got, ok, err := st.ReplaceTokens(ctx, s.ID, s.RefreshToken, session.Tokens{AccessToken: "at2-" + s.ID[:6], RefreshToken: "rt2"})
		if err == nil && !ok {
			err = errors.New("tokens not replaced")
		}
		return got, err
	}},
	{"Update", func(ctx context.Context, st *session.RedisStore, s *session.Session) (*session.Session, error) {
		u := s.Clone()
		u.AccessToken, u.RefreshToken = "at3-"+s.ID[:6], "rt3"
		return u, st.Update(ctx, u)
	}},
}

// checkSeen checks that st's next read of s gives want (nil: gone).
func checkSeen(t *testing.T, st *session.RedisStore, id string, want *session.Session, what string) {
	t.Helper()
	got, err := st.Get(context.Background(), id)
	switch {
	case want == nil && !errors.Is(err, session.ErrNotFound):
		t.Errorf("%s: the other replica's next Get: %v, %v; want ErrNotFound", what, got, err)
	case want != nil && (err != nil || got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken):
		t.Errorf("%s: the other replica's next Get: %+v, %v; want access token %q", what, got, err, want.AccessToken)
	}
}

// replicasSeeWrites runs two replicas on rdbA and rdbB: B has a session
// cached, A ends or replaces it, and B's very next read refuses it or
// has the new tokens. It logs how long A's writes took (they wait for
// B's acknowledgement).
func replicasSeeWrites(t *testing.T, rdbA, rdbB redis.UniversalClient, rounds int) {
	ctx := context.Background()
	a, b := newCachedReplica(t, rdbA, 0), newCachedReplica(t, rdbB, 0)
	app := "app-" + session.NewID()[:6]
	var took []time.Duration
	for i := range rounds {
		for _, w := range replicaWrites {
			s := &session.Session{ID: session.NewID(), App: app, Issuer: "https://idp.example",
				Subject: fmt.Sprintf("sub-%d-%s", i, w.name), SID: fmt.Sprintf("sid-%d-%s", i, w.name), AccessToken: "at1", RefreshToken: "rt1"}
			if err := a.st.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			b.cached(t, s)
			start := time.Now()
			want, err := w.write(ctx, a.st, s)
			took = append(took, time.Since(start))
			if err != nil {
				t.Fatalf("%s at A: %v", w.name, err)
			}
			checkSeen(t, b.st, s.ID, want, w.name)
			if want != nil {
				checkSeen(t, a.st, s.ID, want, w.name+" (A itself)")
			}
		}
	}
	slices.Sort(took)
	t.Logf("%d writes at A that B had cached: median %v, p99 %v, max %v", len(took),
		took[len(took)/2], took[len(took)*99/100], took[len(took)-1])
}

// TestRedisCacheReplicas: replica B has a session cached; replica A
// deletes it, revokes it by sid or by sub, replaces its tokens or
// updates it; B's very next read refuses it or has the new tokens.
func TestRedisCacheReplicas(t *testing.T) {
	replicasSeeWrites(t, newRedisClient(t, nil), newRedisClient(t, nil), 20)
}

// TestRedisCacheSubscriberCut cuts the replicas' subscriber connections
// (CLIENT KILL TYPE pubsub) right before A ends a session that B has
// cached, many times: B never serves it once A's call returned (it went
// to Redis), and caches again once it has subscribed again.
func TestRedisCacheSubscriberCut(t *testing.T) {
	ctx := context.Background()
	rdb := newOwnRedisClient(t) // CLIENT KILL TYPE pubsub hits every subscriber of the server
	const ttl = 200 * time.Millisecond
	a, b := newCachedReplica(t, newClientOn(t, rdb), ttl), newCachedReplica(t, newClientOn(t, rdb), ttl)
	app := "cut-" + session.NewID()[:6]
	for i := range 12 {
		w := replicaWrites[i%len(replicaWrites)]
		s := &session.Session{ID: session.NewID(), App: app, Issuer: "https://idp.example",
			Subject: fmt.Sprintf("sub-%d", i), SID: fmt.Sprintf("sid-%d", i), AccessToken: "at1", RefreshToken: "rt1"}
		if err := a.st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		a.cached(t, s) // both subscribed again since the last cut, and cache
		b.cached(t, s)
		hits := cacheCount(t, b.reg, "hit")
		killed, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		if err != nil || killed < 2 {
			t.Fatalf("CLIENT KILL TYPE pubsub: %d, %v; want both replicas' subscribers", killed, err)
		}
		want, err := w.write(ctx, a.st, s)
		if err != nil {
			t.Fatalf("%s at A: %v", w.name, err)
		}
		checkSeen(t, b.st, s.ID, want, fmt.Sprintf("round %d, %s after the cut", i, w.name))
		if got := cacheCount(t, b.reg, "hit"); got != hits {
			t.Errorf("round %d: B's read after the cut was a cache hit", i)
		}
	}
}

// newClientOn returns another client on the server of rdb (a replica's
// own connections), closed at the end of the test.
func newClientOn(t *testing.T, rdb redis.UniversalClient) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rdb.(*redis.Client).Options().Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisCacheView checks Manager.View on the Redis store, from Redis
// and from the cache: every field but Claims, and adding an upstream to
// the view changes neither the cache nor Redis.
func TestRedisCacheView(t *testing.T) {
	ctx := context.Background()
	rdb := newRedisClient(t, nil)
	r := newCachedReplica(t, rdb, session.DefaultCacheTTL)
	m := session.NewManager(r.st, nil)
	s := &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "sid-v",
		AccessToken: "at", RefreshToken: "rt", Claims: []byte(`{"name":"Alice"}`), Upstreams: []string{"b", "d"}}
	if err := r.st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	r.cached(t, s)
	for i := range 3 { // the first from the cache, the others too
		v, err := m.View(ctx, s.ID)
		if err != nil || v.Claims != nil || v.AccessToken != "at" || !slices.Equal(v.Upstreams, []string{"b", "d"}) {
			t.Fatalf("View %d: %+v, %v; want the session without claims", i, v, err)
		}
		v.AddUpstream("c")
	}
	got, err := r.st.Get(ctx, s.ID)
	if err != nil || string(got.Claims) != `{"name":"Alice"}` || !slices.Equal(got.Upstreams, []string{"b", "d"}) {
		t.Fatalf("Get after changes to views: %+v, %v; want the stored session", got, err)
	}
}
