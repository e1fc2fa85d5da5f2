package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// newSentinelClient returns a failover client through the package's
// Sentinel set (started on first use), closed at the end of the test.
func newSentinelClient(t *testing.T) (redis.UniversalClient, *storetest.RedisSentinel) {
	t.Helper()
	return sentinelClient(t, storetest.SharedSentinel(t))
}

// sentinelClient returns a failover client through s, closed at the end
// of the test.
func sentinelClient(t *testing.T, s *storetest.RedisSentinel) (redis.UniversalClient, *storetest.RedisSentinel) {
	t.Helper()
	rdb, err := session.NewRedisClient(session.Config{RedisAddrs: s.Sentinels, RedisMasterName: storetest.SentinelMaster}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb, s
}

func TestRedisSentinelStoreContract(t *testing.T) {
	rdb, _ := newSentinelClient(t)
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) session.Store {
		return newRedisStore(t, rdb, session.RedisConfig{Timeouts: cfg.Timeouts, Now: cfg.Now})
	})
}

// TestRedisSentinelFailover kills the master under a store: the replica
// is promoted and the store carries on through the failover client.
// Every session and every revocation written and replicated (WAIT)
// before the crash survives; no revoked session is ever served, during
// the failover or after.
func TestRedisSentinelFailover(t *testing.T) {
	ctx := context.Background()
	// A set of its own: after the failover it has no replica left.
	rdb, set := sentinelClient(t, storetest.NewRedisSentinel(t))
	st := newRedisStore(t, rdb, session.RedisConfig{})
	// An app of this run: tombstones of an earlier run (-count) stay.
	app, iss := "failover-"+session.NewID()[:8], "https://idp.example/failover"

	var live, revoked []*session.Session
	for i := range 40 {
		s := &session.Session{ID: session.NewID(), App: app, Issuer: iss,
			Subject: fmt.Sprintf("user-%d", i%10), SID: fmt.Sprintf("sid-%d", i), RefreshToken: "r"}
		if err := st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		live = append(live, s)
	}
	// Revoke sids 0..9 (one session each) and users 5..9 (three each,
	// some already revoked by sid).
	gone := map[string]bool{}
	for i := range 10 {
		ended, err := st.RevokeSID(ctx, app, iss, fmt.Sprintf("sid-%d", i), "", time.Now())
		if err != nil || len(ended) != 1 {
			t.Fatalf("RevokeSID %d: %d ended, %v", i, len(ended), err)
		}
		gone[ended[0].ID] = true
	}
	for i := 5; i < 10; i++ {
		ended, err := st.RevokeSub(ctx, app, iss, fmt.Sprintf("user-%d", i), time.Now())
		if err != nil {
			t.Fatalf("RevokeSub %d: %v", i, err)
		}
		for _, s := range ended {
			gone[s.ID] = true
		}
	}
	kept := live[:0]
	for _, s := range live {
		if gone[s.ID] {
			revoked = append(revoked, s)
		} else {
			kept = append(kept, s)
		}
	}
	live = kept
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged, %v", n, err)
	}

	// During the failover: a revoked session is never served (errors are
	// expected while no master answers).
	stop := make(chan struct{})
	var served atomic.Int64
	var probes sync.WaitGroup
	probes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, s := range revoked {
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				if _, err := st.Get(cctx, s.ID); err == nil {
					served.Add(1)
				}
				cancel()
			}
		}
	})

	start := time.Now()
	old, err := set.KillMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := set.WaitFailover(old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The store works again through the same client.
	if err := proctest.Eventually(15*time.Second, 50*time.Millisecond, func() error {
		if err := st.Create(ctx, &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "after", SID: "sid-after"}); err != nil {
			return fmt.Errorf("the store does not work after the failover to %s: %v", promoted, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("master %s killed, %s promoted; the store wrote again after %v", old, promoted, time.Since(start).Round(time.Millisecond))
	close(stop)
	probes.Wait()
	if n := served.Load(); n > 0 {
		t.Errorf("revoked sessions were served %d times during the failover", n)
	}

	for _, s := range live {
		if _, err := st.Get(ctx, s.ID); err != nil {
			t.Errorf("session %s (replicated before the crash) after the failover: %v", s.Subject, err)
		}
	}
	for _, s := range revoked {
		if _, err := st.Get(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("revoked session %s/%s after the failover: %v, want ErrNotFound", s.Subject, s.SID, err)
		}
	}
	// The tombstones survived too: the revoked sid and users cannot sign
	// in again with a session from before the revocation.
	old0 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "user-0", SID: "sid-0"}
	if err := st.Create(ctx, old0); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("a new session with a revoked sid after the failover: %v, want ErrRevoked", err)
	}
	before := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: "user-7", CreatedAt: time.Now().Add(-time.Hour)}
	if err := st.Create(ctx, before); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("a session of a revoked user created before the revocation: %v, want ErrRevoked", err)
	}
	// And revocation works on the new master.
	ended, err := st.RevokeSub(ctx, app, iss, "user-1", time.Now())
	if err != nil || len(ended) == 0 {
		t.Errorf("RevokeSub after the failover: %d ended, %v", len(ended), err)
	}
}

// TestRedisSentinelCacheReplicas is TestRedisCacheReplicas through
// Sentinel failover clients.
func TestRedisSentinelCacheReplicas(t *testing.T) {
	a, _ := newSentinelClient(t)
	b, _ := newSentinelClient(t)
	replicasSeeWrites(t, a, b, 5)
}
