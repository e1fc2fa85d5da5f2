package logout_test

import (
	"context"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// swapCache is a MemoryReplayCache that the benchmark can empty, so a pool
// of pre-signed tokens stays fresh (RSA signing is far slower than verify).
type swapCache struct{ c *logout.MemoryReplayCache }

func (s *swapCache) Seen(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.c.Seen(ctx, key, ttl)
}

func (s *swapCache) Forget(ctx context.Context, key string) error { return s.c.Forget(ctx, key) }

func BenchmarkVerifyRS256(b *testing.B) {
	op := testop.New(b, testop.Config{})
	rc := &swapCache{c: logout.NewMemoryReplayCache()}
	v := newVerifier(b, op, func(c *logout.VerifierConfig) { c.Replay = rc })
	pool := make([]string, 512)
	for i := range pool {
		pool[i] = lt(nil, testop.SignOpts{})(op) // each with its own jti
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(pool) == 0 && i > 0 {
			b.StopTimer()
			rc.c = logout.NewMemoryReplayCache()
			b.StartTimer()
		}
		if _, err := v.Verify(ctx, pool[i%len(pool)]); err != nil {
			b.Fatal(err)
		}
	}
}
