package session

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisReplayCache remembers keys (the jti of accepted logout tokens)
// across replicas: one SET NX PX per check, so that a token replayed to
// any replica is rejected. It satisfies logout.ReplayCache.
type RedisReplayCache struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisReplayCache returns a replay cache on rdb, which the caller
// owns.
func NewRedisReplayCache(rdb redis.UniversalClient) *RedisReplayCache {
	return &RedisReplayCache{rdb: rdb, prefix: keyPrefix(rdb) + "jti:"}
}

// Seen reports whether key was already recorded; if not, it records it
// for ttl (a minute if ttl is not positive). Check and record are one
// atomic command. When Redis is down it returns the error, and the
// caller refuses the token.
func (c *RedisReplayCache) Seen(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = time.Minute
	}
	set, err := c.rdb.SetNX(ctx, c.prefix+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("replay cache: %w", err)
	}
	return !set, nil
}

// Forget removes key, so that a token whose logout failed after the check
// can be delivered again.
func (c *RedisReplayCache) Forget(ctx context.Context, key string) error {
	if err := c.rdb.Del(ctx, c.prefix+key).Err(); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	return nil
}
