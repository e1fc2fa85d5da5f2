package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"time"

	"github.com/patrickmn/go-cache"
)

// ReplayCache remembers the logout tokens already accepted (§2.6 step 7).
type ReplayCache interface {
	// Seen reports whether key was already recorded; if not, it records it
	// for ttl. Check and record are one atomic step.
	Seen(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Forget removes key, so that a token whose logout failed after the
	// check can be delivered again (the IdP's retry).
	Forget(ctx context.Context, key string) error
}

// replayKey is the cache key of a token: a hash of iss and jti, so the
// store never holds raw, attacker-sized values.
func replayKey(iss, jti string) string {
	sum := sha256.Sum256([]byte(iss + "\x00" + jti))
	return "logout-jti:" + hex.EncodeToString(sum[:])
}

// checkReplay makes the replay check of one token once, however many apps
// it addresses: it records the token's iss+jti in each distinct cache of
// caches (apps normally share one) and rejects the token if any had it.
// On a cache failure it forgets what it recorded.
func checkReplay(ctx context.Context, caches []ReplayCache, tok *Token, ttl time.Duration) error {
	key := replayKey(tok.Issuer, tok.JTI)
	caches = distinct(caches)
	seen := false
	for i, c := range caches {
		s, err := c.Seen(ctx, key, ttl)
		if err != nil {
			err = &ReplayCacheError{Err: err}
			if ferr := forget(ctx, caches[:i], tok); ferr != nil {
				err = errors.Join(err, ferr)
			}
			return err
		}
		seen = seen || s
	}
	if seen {
		return invalid(ReasonReplay, "the logout token was already used", nil)
	}
	return nil
}

// forget undoes checkReplay for tok in caches.
func forget(ctx context.Context, caches []ReplayCache, tok *Token) error {
	key := replayKey(tok.Issuer, tok.JTI)
	var errs []error
	for _, c := range distinct(caches) {
		if err := c.Forget(ctx, key); err != nil {
			errs = append(errs, &ReplayCacheError{Err: err})
		}
	}
	return errors.Join(errs...)
}

// distinct returns caches without repeats (compared by identity where the
// type allows it).
func distinct(caches []ReplayCache) []ReplayCache {
	var out []ReplayCache
	for _, c := range caches {
		dup := false
		for _, o := range out {
			if same(c, o) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

func same(a, b ReplayCache) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Kind() == reflect.Pointer && a == b
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

// Forget implements ReplayCache.
func (m *MemoryReplayCache) Forget(_ context.Context, key string) error {
	m.c.Delete(key)
	return nil
}
