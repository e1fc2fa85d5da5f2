package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/patrickmn/go-cache"
)

// ReplayCache remembers the logout tokens already accepted (§2.6 step 7).
type ReplayCache interface {
	// Seen reports whether key was already recorded; if not, it records it
	// for ttl. Check and record are one atomic step.
	Seen(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// replayKey is the cache key of a token: a hash of iss and jti, so the
// store never holds raw, attacker-sized values.
func replayKey(iss, jti string) string {
	sum := sha256.Sum256([]byte(iss + "\x00" + jti))
	return "logout-jti:" + hex.EncodeToString(sum[:])
}

// MemoryReplayCache is a ReplayCache for one process, on go-cache.
type MemoryReplayCache struct {
	c *cache.Cache
}

// NewMemoryReplayCache returns an empty MemoryReplayCache. Expired keys are
// swept every minute by go-cache's janitor, which stops when the cache is
// garbage collected.
func NewMemoryReplayCache() *MemoryReplayCache {
	return &MemoryReplayCache{c: cache.New(cache.NoExpiration, time.Minute)}
}

// Seen implements ReplayCache. go-cache's Add fails when a live entry
// exists, under its lock, which makes it the atomic check-and-record.
func (m *MemoryReplayCache) Seen(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return m.c.Add(key, struct{}{}, ttl) != nil, nil
}
