package proxy

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

// TestLiveWebSocketCutOnOtherReplica: a session ended on replica A (a
// back-channel logout there) closes its WebSocket on replica B, through
// the Redis broadcast; B's other session keeps its socket.
func TestLiveWebSocketCutOnOtherReplica(t *testing.T) {
	srv, err := storetest.StartRedis()
	if errors.Is(err, storetest.ErrNoRedis) && os.Getenv("CI") != "true" {
		t.Skip("redis-server is not installed (set CI=true to make this a failure)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	store := func() session.Store {
		rs, err := session.NewRedisStore(rdb, session.RedisConfig{Secret: "live-test-secret-0123456789abcdef0123"})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	up := newEchoWS(t)
	a, b := newLiveEnv(t, store(), up.URL), newLiveEnv(t, store(), up.URL)
	storetest.WaitSubscribers(t, rdb, "bffgate:ended", 2)

	alice, bob := a.newSession(t, "alice"), a.newSession(t, "bob")
	ca, cb := b.dial(t, alice), b.dial(t, bob)
	if _, err := a.m.End(context.Background(), alice.ID, session.CauseBackchannel); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, ca)
	echo(t, cb, "still here")
}
