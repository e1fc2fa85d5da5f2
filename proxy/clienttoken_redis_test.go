package proxy

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// replica is one gateway's client tokens on the shared Redis: its own
// client connection and claim owner.
func replica(t *testing.T, srv *storetest.RedisServer, op *testop.OP, clock *fakeClock) (ClientTokenSource, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	store, err := session.NewRedisClientTokens(rdb, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return newClientTokens(t, op, func(c *ClientTokensConfig) { c.Store, c.Now = store, clock.Now }).For(apiGrant), rdb
}

func TestClientTokenSharedByReplicas(t *testing.T) {
	srv := storetest.RedisForTest(t)
	op := testop.New(t, testop.Config{ClientTokenTTL: 100 * time.Second})
	clock := newFakeClock()
	a, rdb := replica(t, srv, op, clock)
	b, _ := replica(t, srv, op, clock)
	ctx := context.Background()

	// Both replicas at once, many requests each: one grant between them.
	both := func() []string {
		held, release := op.HoldClientCredentials()
		var wg sync.WaitGroup
		got := make([]string, 40)
		errs := make([]error, 40)
		for i := range got {
			src := a
			if i%2 == 1 {
				src = b
			}
			wg.Go(func() { got[i], errs[i] = src.ClientToken(ctx) })
		}
		<-held
		release()
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i] != got[0] {
				t.Fatalf("request %d: %q, %v; want the shared token %q", i, got[i], errs[i], got[0])
			}
		}
		return got
	}
	first := both()[0]
	if n := op.ClientCredentialsCount(); n != 1 {
		t.Fatalf("grants for two replicas = %d, want 1", n)
	}

	// Stored sealed: Redis never shows the token.
	keys, err := rdb.Keys(ctx, "bffgate:ct:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("client token keys = %v, %v; want one", keys, err)
	}
	raw, _ := rdb.Get(ctx, keys[0]).Result()
	if strings.Contains(raw, first) {
		t.Errorf("Redis holds the client token in the clear")
	}
	if ttl := rdb.PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > 100*time.Second {
		t.Errorf("client token key TTL = %v, want the token's lifetime (≤ 100s)", ttl)
	}

	// Within the margin, the two replicas again make one grant.
	clock.Advance(80 * time.Second)
	second := both()[0]
	if second == first {
		t.Fatal("after the margin: still the first token")
	}
	if n := op.ClientCredentialsCount(); n != 2 {
		t.Errorf("grants after the margin = %d, want 2", n)
	}

	// A replica that starts later takes the stored token: no grant.
	c, _ := replica(t, srv, op, clock)
	if tok, err := c.ClientToken(ctx); err != nil || tok != second {
		t.Errorf("new replica: %q, %v; want the stored token", tok, err)
	}
	if n := op.ClientCredentialsCount(); n != 2 {
		t.Errorf("grants after a new replica started = %d, want 2", n)
	}
}

// With Redis down, each replica still gets a token of its own.
func TestClientTokenRedisDown(t *testing.T) {
	srv := storetest.RedisForTest(t)
	op := testop.New(t, testop.Config{})
	a, _ := replica(t, srv, op, newFakeClock())
	srv.Stop()
	if tok, err := a.ClientToken(context.Background()); err != nil || tok == "" {
		t.Errorf("Redis down: %q, %v; want a token of this replica's own", tok, err)
	}
}
