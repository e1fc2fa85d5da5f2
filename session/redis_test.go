package session_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// The package's redis-server, started by TestMain.
var (
	redisSrv  *storetest.RedisServer
	redisSkip string
)

func TestMain(m *testing.M) {
	os.Exit(storetest.MainWithRedis(m, func(srv *storetest.RedisServer, skip string) { redisSrv, redisSkip = srv, skip }))
}

const redisSecret = "0123456789abcdef0123456789abcdef-redis-test"

// newRedisClient returns a client on the package's server, closed at the
// end of the test.
func newRedisClient(t *testing.T, reg prometheus.Registerer) redis.UniversalClient {
	t.Helper()
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	rdb, err := session.NewRedisClient(session.Config{RedisURL: redisSrv.URL(0)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func newRedisStore(t *testing.T, rdb redis.UniversalClient, cfg session.RedisConfig) *session.RedisStore {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = redisSecret
	}
	if cfg.Cache.TTL == 0 {
		// A store's writes in its first TTL wait out the rest of it
		// (its peers are not all known yet); most tests write at once.
		cfg.Cache.TTL = 100 * time.Millisecond
	}
	st, err := session.NewRedisStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRedisStoreContract(t *testing.T) {
	rdb := newRedisClient(t, nil)
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) session.Store {
		return newRedisStore(t, rdb, session.RedisConfig{Timeouts: cfg.Timeouts, Now: cfg.Now})
	})
}

// TestRedisTokensAtRest checks that what Redis holds contains none of a
// session's tokens, and that a store with another secret cannot read it.
func TestRedisTokensAtRest(t *testing.T) {
	ctx := context.Background()
	rdb := newRedisClient(t, nil)
	st := newRedisStore(t, rdb, session.RedisConfig{})
	s := &session.Session{
		ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "sid-1",
		IDToken: "eyJ-id-token-SECRET1", AccessToken: "access-SECRET2", RefreshToken: "refresh-SECRET3",
		Claims: []byte(`{"email":"alice@example.com"}`),
	}
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	upd := s.Clone()
	upd.AccessToken = "access-SECRET4"
	if err := st.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.HGetAll(ctx, "bffgate:s:"+s.ID).Result()
	if err != nil || len(raw) == 0 {
		t.Fatalf("HGETALL: %v, %d fields", err, len(raw))
	}
	dump, err := rdb.Dump(ctx, "bffgate:s:"+s.ID).Result()
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for k, v := range raw {
		all.WriteString(k + "=" + v + "\n")
	}
	all.WriteString(dump)
	for _, secret := range []string{"SECRET1", "SECRET2", "SECRET3", "SECRET4", "alice@example.com"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the raw Redis record contains %q", secret)
		}
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil || got.AccessToken != "access-SECRET4" || got.RefreshToken != "refresh-SECRET3" || got.IDToken != s.IDToken {
		t.Fatalf("Get: %+v, %v", got, err)
	}

	other := newRedisStore(t, rdb, session.RedisConfig{Secret: strings.Repeat("z", 40)})
	if _, err := other.Get(ctx, s.ID); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get with another secret: got %v, want a decryption error", err)
	}
	// A sealed value moved to another session does not open (the id is
	// the additional data).
	s2 := &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "bob"}
	if err := st.Create(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "bffgate:s:"+s2.ID, "t", raw["t"]).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s2.ID); err == nil {
		t.Error("Get of a session carrying another session's sealed tokens: got nil error")
	}
}

func TestRedisReplayCache(t *testing.T) {
	ctx := context.Background()
	rdb := newRedisClient(t, nil)
	a, b := session.NewRedisReplayCache(rdb), session.NewRedisReplayCache(rdb)
	key := "logout-jti:" + session.NewID()
	if seen, err := a.Seen(ctx, key, time.Minute); err != nil || seen {
		t.Fatalf("first Seen: %v, %v; want false, nil", seen, err)
	}
	if seen, err := b.Seen(ctx, key, time.Minute); err != nil || !seen {
		t.Fatalf("Seen on another replica: %v, %v; want true, nil", seen, err)
	}
	if err := b.Forget(ctx, key); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if seen, err := a.Seen(ctx, key, time.Minute); err != nil || seen {
		t.Fatalf("Seen after Forget: %v, %v; want false, nil", seen, err)
	}
	// A key is kept for its ttl (Redis expires it; no need to watch).
	short := "logout-jti:" + session.NewID()
	a.Seen(ctx, short, 50*time.Millisecond)
	if ttl, err := rdb.PTTL(ctx, "bffgate:jti:"+short).Result(); err != nil || ttl <= 0 || ttl > 50*time.Millisecond {
		t.Errorf("PTTL of a key seen for 50ms: %v, %v; want in (0, 50ms]", ttl, err)
	}
	if ttl, err := rdb.PTTL(ctx, "bffgate:jti:"+key).Result(); err != nil || ttl <= 50*time.Millisecond || ttl > time.Minute {
		t.Errorf("PTTL of a key seen for a minute: %v, %v; want in (50ms, 1m]", ttl, err)
	}
}

// ownRedis starts a redis-server for t alone (a test that stops it), or
// skips as SkipWithoutRedis does; it is stopped when the test ends.
func ownRedis(t *testing.T) *storetest.RedisServer {
	t.Helper()
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	srv, err := storetest.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// newOwnRedisClient starts a redis-server for t alone and returns a
// client on it; both end with the test.
func newOwnRedisClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	srv := ownRedis(t)
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// remoteRecorder is a RemoteObserver.
type remoteRecorder struct {
	mu     sync.Mutex
	local  []string
	remote []string
	ch     chan string
}

func (r *remoteRecorder) SessionEnded(_ context.Context, cause session.Cause, s *session.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.local = append(r.local, string(cause)+" "+s.ID)
}

func (r *remoteRecorder) SessionEndedElsewhere(_ context.Context, cause session.Cause, id string) {
	r.mu.Lock()
	r.remote = append(r.remote, string(cause)+" "+id)
	r.mu.Unlock()
	r.ch <- string(cause) + " " + id
}

// TestRedisBroadcast runs two Managers (two replicas) on one Redis: a
// session ended on A reaches B's RemoteObservers only, with its cause,
// and A's RemoteObservers are not told twice.
func TestRedisBroadcast(t *testing.T) {
	ctx := context.Background()
	// A server of its own, so that the only subscribers to the channel
	// are A's and B's listeners (pub/sub ignores the database number).
	rdb := newOwnRedisClient(t)
	a := session.NewManager(newRedisStore(t, rdb, session.RedisConfig{}), nil)
	b := session.NewManager(newRedisStore(t, rdb, session.RedisConfig{}), nil)
	ra, rb := &remoteRecorder{ch: make(chan string, 10)}, &remoteRecorder{ch: make(chan string, 10)}
	var plainB []string
	a.Observe(ra)
	b.Observe(rb)
	b.Observe(session.ObserverFunc(func(_ context.Context, _ session.Cause, s *session.Session) { plainB = append(plainB, s.ID) }))
	storetest.WaitSubscribers(t, rdb, "bffgate:ended", 2)

	app, iss := "app-"+session.NewID()[:6], "https://idp.example"
	s1 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "alice", SID: "sid-1"}
	s2 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "alice", SID: "sid-2"}
	for _, s := range []*session.Session{s1, s2} {
		if err := a.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.EndBySID(ctx, app, iss, "sid-1", "", session.CauseBackchannel); err != nil {
		t.Fatal(err)
	}
	if _, err := a.End(ctx, s2.ID, session.CauseRPInitiated); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backchannel " + s1.ID, "rp_initiated " + s2.ID} {
		select {
		case got := <-rb.ch:
			if got != want {
				t.Errorf("B's remote observer: got %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("B's remote observer never got %q", want)
		}
	}
	// A's listener gets the messages in the order they were published:
	// once it has passed on a session B ended after A's two, it has seen
	// A's own broadcasts too, and must have skipped them.
	s3 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "bob", SID: "sid-3"}
	if err := b.Create(ctx, s3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.End(ctx, s3.ID, session.CauseRPInitiated); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ra.ch:
		if want := "rp_initiated " + s3.ID; got != want {
			t.Errorf("A's remote observer: got %q first, want %q (B's end only, not A's own broadcasts)", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("A's remote observer never got B's end of %s", s3.ID)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if len(ra.remote) != 1 || len(ra.local) != 2 {
		t.Errorf("A's observer: local %q, remote %q; want 2 local, 1 remote (B's, not its own broadcast)", ra.local, ra.remote)
	}
	if len(plainB) != 1 || plainB[0] != s3.ID {
		t.Errorf("B's plain observer: %q, want only B's own end of %s (not A's ends)", plainB, s3.ID)
	}
	if _, err := b.Get(ctx, s1.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get on B of a session A ended: %v, want ErrNotFound", err)
	}
}

// TestRedisOutage stops Redis under a store: calls fail with errors (not
// ErrNotFound, never a stale session), Ping fails, and everything works
// again once Redis is back, with no goroutine left behind after Close.
func TestRedisOutage(t *testing.T) {
	srv := ownRedis(t) // its own server: this test stops it
	ctx := context.Background()
	before := runtime.NumGoroutine()

	reg := prometheus.NewRegistry()
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := session.NewRedisStore(rdb, session.RedisConfig{Secret: redisSecret})
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "sid-1"}
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := st.Get(cctx, s.ID); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get with Redis down: got %v, want an error other than ErrNotFound", err)
	}
	if err := st.Ping(cctx); err == nil {
		t.Error("Ping with Redis down: got nil")
	}
	if _, err := st.RevokeSID(cctx, "demo", "https://idp.example", "sid-1", "", time.Now()); err == nil {
		t.Error("RevokeSID with Redis down: got nil")
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "bffgate_redis_errors_total")); n == 0 {
		t.Error("bffgate_redis_errors_total did not count the failures")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The data is gone (no persistence), but the client reconnects.
	if err := proctest.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		if st.Ping(ctx) != nil {
			return errors.New("the client did not reconnect")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after the restart: %v, want ErrNotFound", err)
	}
	if err := st.Create(ctx, &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "bob"}); err != nil {
		t.Errorf("Create after the restart: %v", err)
	}

	st.Close()
	rdb.Close()
	if err := proctest.Eventually(5*time.Second, 20*time.Millisecond, func() error {
		if runtime.NumGoroutine() > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("goroutines: %d before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// mustCounter returns the sum of a counter vector's series as one
// collector for testutil.
func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sum"})
	c.Add(sum)
	return c
}
