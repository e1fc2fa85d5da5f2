package session_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// newClusterClient returns a client on the package's 3-master Cluster
// (started on first use), closed at the end of the test.
func newClusterClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	c := storetest.SharedCluster(t)
	rdb, err := session.NewRedisClient(session.Config{RedisAddrs: c.Addrs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("client for %d seeds is a %T, want a Cluster client", len(c.Addrs), rdb)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestRedisClusterStoreContract(t *testing.T) {
	rdb := newClusterClient(t)
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) session.Store {
		return newRedisStore(t, rdb, session.RedisConfig{Timeouts: cfg.Timeouts, Now: cfg.Now})
	})
}

// TestRedisClusterRevocations runs back-channel style revocations (by sid,
// by sid and sub, by sub) against a real Cluster, many times: each must
// succeed and end the sessions it names, whichever node go-redis picks.
// Before the scripts declared their keys, about half failed with "ERR
// Script attempted to access a non local key in a cluster node".
func TestRedisClusterRevocations(t *testing.T) {
	ctx := context.Background()
	st := newRedisStore(t, newClusterClient(t), session.RedisConfig{})
	const iss = "https://idp.example/cluster"
	failed := 0
	for i := range 24 {
		app, sub, sid := fmt.Sprintf("app-%d-%s", i, session.NewID()[:6]), fmt.Sprintf("sub-%d", i), fmt.Sprintf("sid-%d", i)
		s1 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: sub, SID: sid}
		s2 := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: sub, SID: sid + "-other"}
		for _, s := range []*session.Session{s1, s2} {
			if err := st.Create(ctx, s); err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
		}
		var (
			ended []*session.Session
			err   error
			what  string
		)
		switch i % 3 {
		case 0:
			what = "RevokeSID"
			ended, err = st.RevokeSID(ctx, app, iss, sid, "", time.Now())
		case 1:
			what = "RevokeSID with sub"
			ended, err = st.RevokeSID(ctx, app, iss, sid, sub, time.Now())
		case 2:
			what = "RevokeSub"
			ended, err = st.RevokeSub(ctx, app, iss, sub, time.Now())
		}
		if err != nil {
			failed++
			t.Errorf("%s #%d: %v", what, i, err)
			continue
		}
		want := 1
		if i%3 == 2 {
			want = 2
		}
		if len(ended) != want || ended[0].ID != s1.ID && ended[0].ID != s2.ID {
			t.Errorf("%s #%d ended %d sessions, want %d", what, i, len(ended), want)
		}
		if _, err := st.Get(ctx, s1.ID); err != session.ErrNotFound {
			t.Errorf("%s #%d: the revoked session is still there: %v", what, i, err)
		}
		again := &session.Session{ID: session.NewID(), App: app, Issuer: iss, Subject: sub, SID: sid, CreatedAt: time.Now().Add(-time.Minute)}
		if err := st.Create(ctx, again); err != session.ErrRevoked {
			t.Errorf("%s #%d: a new session with the revoked sid: %v, want ErrRevoked", what, i, err)
		}
		if d, err := st.Delete(ctx, s2.ID); i%3 != 2 && (err != nil || d.ID != s2.ID) {
			t.Errorf("Delete #%d: %v", i, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 24 revocations failed", failed)
	}
}

// TestRedisClusterCacheReplicas is TestRedisCacheReplicas on the
// Cluster: the invalidation channel is in the stores' slot.
func TestRedisClusterCacheReplicas(t *testing.T) {
	replicasSeeWrites(t, newClusterClient(t), newClusterClient(t), 5)
}
