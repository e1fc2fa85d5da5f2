package session_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	st := newRedisStore(t, rdb, session.RedisConfig{})
	s := &session.Session{ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "sid-1",
		AccessToken: "at", RefreshToken: "rt", Claims: []byte(`{"sub":"alice"}`)}
	if err := st.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	// The cache is used once the store's invalidation channel is known
	// to work: poll until a read costs no round trip.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		n := cc.roundTrips(func() { _, err = st.Get(ctx, s.ID) })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("every Get of a hot session still costs %d Redis round trips after 5 s", n)
		}
		time.Sleep(10 * time.Millisecond)
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
