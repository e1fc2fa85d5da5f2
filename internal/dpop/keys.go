package dpop

import (
	"bytes"
	"time"

	"github.com/patrickmn/go-cache"
)

// Keys keeps the parsed keys of recent sessions, so that a proxied
// request costs one signature and not a key parse (a scalar
// multiplication) too. It holds at most max keys (beyond that, keys are
// parsed per use and not kept); each is dropped ttl after it was parsed.
// Safe for concurrent use.
type Keys struct {
	c   *cache.Cache
	max int
}

// NewKeys returns a cache of at most max keys (default 100000) kept ttl
// after they were parsed (default 10m).
func NewKeys(max int, ttl time.Duration) *Keys {
	if max <= 0 {
		max = 100000
	}
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	return &Keys{c: cache.New(ttl, ttl), max: max}
}

// Get returns the key of session id whose stored form is raw, parsing it
// only if it is not cached (or the cached one is not raw's).
func (ks *Keys) Get(id string, raw []byte) (*Key, error) {
	if len(raw) == 0 {
		return nil, errNoKey
	}
	if v, ok := ks.c.Get(id); ok {
		if k := v.(*Key); bytes.Equal(k.raw, raw) {
			return k, nil
		}
	}
	k, err := ParseKey(raw)
	if err != nil {
		return nil, err
	}
	if ks.c.ItemCount() < ks.max {
		ks.c.SetDefault(id, k)
	}
	return k, nil
}

// Forget drops a session's key (its session ended).
func (ks *Keys) Forget(id string) { ks.c.Delete(id) }
