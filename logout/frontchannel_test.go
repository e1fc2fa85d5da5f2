package logout_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
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

// frontchannelFlood is how many unknown-sid front-channel requests the
// bound tests send, each with a sid at the length cap.
const frontchannelFlood = 5000

// frontchannelService returns a Service over mgr with one app of op.
func frontchannelService(t *testing.T, op *testop.OP, mgr *session.Manager, reg *prometheus.Registry) *logout.Service {
	t.Helper()
	svc := newService(t, logout.ServiceConfig{}, mgr, reg, nil)
	svc.Register(&logout.Client{App: app, Issuer: op.URL, ClientID: op.ClientID(), Verifier: newVerifier(t, op, nil)})
	return svc
}

// floodSID is the i-th sid of a flood: distinct, exactly at the cap.
func floodSID(i int) string {
	s := strconv.Itoa(i) + "-"
	return s + strings.Repeat("x", logout.MaxIdentifierLen-len(s))
}

// TestFrontchannelUnknownSIDLeavesNoState: a front-channel request for a
// sid no session has stores nothing (no tombstone), so unauthenticated
// requests cannot grow the store; a sid over the cap is refused; a sid
// that did end sessions is still tombstoned, so a late login callback of
// that IdP session is refused.
func TestFrontchannelUnknownSIDLeavesNoState(t *testing.T) {
	op := testop.New(t, testop.Config{})
	stores := map[string]func(t *testing.T) (session.Store, func() int64){
		"memory": func(t *testing.T) (session.Store, func() int64) {
			st := session.NewMemoryStore(session.MemoryConfig{})
			return st, func() int64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return int64(ms.HeapAlloc)
			}
		},
		"redis": func(t *testing.T) (session.Store, func() int64) {
			storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
			rdb, err := session.NewRedisClient(session.Config{RedisURL: redisSrv.URL(3)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rdb.Close() })
			if err := rdb.FlushDB(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			st, err := session.NewRedisStore(rdb, session.RedisConfig{Secret: "0123456789abcdef0123456789abcdef-front"})
			if err != nil {
				t.Fatal(err)
			}
			return st, func() int64 { return redisBytes(t, rdb) }
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, size := mk(t)
			mgr := newManager(t, st)
			reg := prometheus.NewRegistry()
			svc := frontchannelService(t, op, mgr, reg)

			before := size()
			for i := range frontchannelFlood {
				if _, err := svc.Frontchannel(ctx, app, op.URL, floodSID(i)); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			after := size()
			// Bound: 256 KiB over the whole flood, room for GC noise
			// (5000 sids of 255 bytes are 1.2 MiB as raw bytes alone;
			// as tombstones they took 1.9 MB, in memory and in Redis).
			const bound = 256 << 10
			if grew := after - before; grew > bound {
				t.Errorf("%d unknown-sid front-channel requests grew the store by %d bytes, want at most %d", frontchannelFlood, grew, bound)
			}
			if got := testutil.ToFloat64(svc.FrontchannelMetric().WithLabelValues(app, "no_session", "")); got != frontchannelFlood {
				t.Errorf("no_session count = %v, want %d", got, frontchannelFlood)
			}
			// No tombstone: a session of such a sid can still be created.
			if err := mgr.Create(ctx, &session.Session{ID: session.NewID(), App: app, Issuer: op.URL, Subject: "alice", SID: floodSID(7)}); err != nil {
				t.Errorf("create after an unknown-sid front-channel request: %v, want nil (no tombstone)", err)
			}

			// Over the cap: refused with a clear reason, nothing stored.
			long := strings.Repeat("y", logout.MaxIdentifierLen+1)
			if _, err := svc.Frontchannel(ctx, app, op.URL, long); reason(err) != logout.ReasonTooLong {
				t.Errorf("sid of %d bytes: err = %v, want reason %s", len(long), err, logout.ReasonTooLong)
			}
			if _, err := svc.Frontchannel(ctx, app, strings.Repeat("i", 70000), "s"); reason(err) != logout.ReasonTooLong {
				t.Errorf("iss of 70000 bytes: err = %v, want reason %s", err, logout.ReasonTooLong)
			}

			// A sid that ended a session stays tombstoned.
			sid := "live-sid"
			if err := mgr.Create(ctx, &session.Session{ID: session.NewID(), App: app, Issuer: op.URL, Subject: "bob", SID: sid}); err != nil {
				t.Fatal(err)
			}
			ended, err := svc.Frontchannel(ctx, app, op.URL, sid)
			if err != nil || len(ended) != 1 {
				t.Fatalf("Frontchannel(live sid) = %d sessions, %v; want 1, nil", len(ended), err)
			}
			err = mgr.Create(ctx, &session.Session{ID: session.NewID(), App: app, Issuer: op.URL, Subject: "bob", SID: sid})
			if !errors.Is(err, session.ErrRevoked) {
				t.Errorf("late login for a front-channel-ended sid: %v, want ErrRevoked", err)
			}
		})
	}
}

// redisBytes is the used memory of the test database's keys: the key
// count times a generous per-key overhead plus MEMORY USAGE of each.
func redisBytes(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		u, err := rdb.MemoryUsage(ctx, k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		n += u
	}
	return n
}

// TestVerifierCapsIdentifiers: a logout token whose sid, sub or jti is
// longer than MaxIdentifierLen is rejected with reason too_long, before
// it can reach a tombstone or the replay cache; at the cap it passes.
func TestVerifierCapsIdentifiers(t *testing.T) {
	op := testop.New(t, testop.Config{})
	v := newVerifier(t, op, nil)
	over := strings.Repeat("z", logout.MaxIdentifierLen+1)
	at := strings.Repeat("z", logout.MaxIdentifierLen)
	if _, err := v.Verify(context.Background(), lt(set("iss", over), testop.SignOpts{})(op)); reason(err) != logout.ReasonTooLong {
		t.Errorf("iss of %d bytes: reason %q, want %q", len(over), reason(err), logout.ReasonTooLong)
	}
	for _, claim := range []string{"sid", "sub", "jti"} {
		t.Run(claim, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), lt(set(claim, over), testop.SignOpts{})(op)); reason(err) != logout.ReasonTooLong {
				t.Errorf("%s of %d bytes: reason %q, want %q", claim, len(over), reason(err), logout.ReasonTooLong)
			}
			if _, err := v.Verify(context.Background(), lt(set(claim, at), testop.SignOpts{})(op)); err != nil {
				t.Errorf("%s of %d bytes (the cap): %v, want accepted", claim, len(at), err)
			}
		})
	}
}

// TestHandleKeyed: the logout handle depends on the session id and the
// key only: replicas with the same key agree, another key differs, and
// it is neither the IdP's sid nor the hashed id.
func TestHandleKeyed(t *testing.T) {
	mk := func(key string) *logout.Service {
		return newService(t, logout.ServiceConfig{HandleKey: []byte(key)}, nil, nil, nil)
	}
	a, b, other := mk("key-1"), mk("key-1"), mk("key-2")
	s := &session.Session{ID: "id-1", SID: "idp-sid"}
	h := a.Handle(s)
	if h != b.Handle(s) || h == other.Handle(s) || h == s.SID || h == session.Hash(s.ID) || len(h) != 22 {
		t.Errorf("handle %q: same key %q, other key %q", h, b.Handle(s), other.Handle(s))
	}
}
