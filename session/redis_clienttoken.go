package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientToken is an access token the gateway obtained for itself (the
// client-credentials grant), shared by every user of an API.
type ClientToken struct {
	AccessToken string    `json:"at"`
	Expiry      time.Time `json:"exp"`
	Issued      time.Time `json:"iat"`
}

// RedisClientTokens keeps the client tokens the replicas share in Redis,
// sealed with the session secret's token key (AES-GCM, the key name as
// additional data) and expiring with the token, plus a claim per key so
// that one replica fetches a new token while the others wait for it. It
// satisfies proxy.ClientTokenStore.
type RedisClientTokens struct {
	rdb    redis.UniversalClient
	prefix string
	crypt  *tokenCipher
	// owner is this process's claim value, so that a replica releases
	// only its own claim.
	owner string
}

// NewRedisClientTokens returns the client-token store on rdb, which the
// caller owns; secret is the session secret.
func NewRedisClientTokens(rdb redis.UniversalClient, secret string) (*RedisClientTokens, error) {
	c, err := newTokenCipher(secret)
	if err != nil {
		return nil, err
	}
	var b [16]byte
	rand.Read(b[:])
	return &RedisClientTokens{rdb: rdb, prefix: keyPrefix(rdb) + "ct:", crypt: c, owner: hex.EncodeToString(b[:])}, nil
}

func (c *RedisClientTokens) tokenKey(key string) string { return c.prefix + key }
func (c *RedisClientTokens) claimKey(key string) string { return c.prefix + key + ":claim" }

// GetClientToken returns the token stored under key, and false if there
// is none (or it does not decrypt: another secret wrote it).
func (c *RedisClientTokens) GetClientToken(ctx context.Context, key string) (ClientToken, bool, error) {
	b, err := c.rdb.Get(ctx, c.tokenKey(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return ClientToken{}, false, nil
	case err != nil:
		return ClientToken{}, false, fmt.Errorf("client token: %w", err)
	}
	p, err := c.crypt.open(c.tokenKey(key), b)
	if err != nil {
		return ClientToken{}, false, nil // treated as absent: the next grant overwrites it
	}
	var t ClientToken
	if err := json.Unmarshal(p, &t); err != nil {
		return ClientToken{}, false, nil
	}
	return t, true, nil
}

// PutClientToken stores t under key until t expires (a token without
// expiry: an hour).
func (c *RedisClientTokens) PutClientToken(ctx context.Context, key string, t ClientToken) error {
	ttl := time.Hour
	if !t.Expiry.IsZero() {
		ttl = time.Until(t.Expiry)
	}
	if ttl <= 0 {
		return nil
	}
	p, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("client token: %w", err)
	}
	if err := c.rdb.Set(ctx, c.tokenKey(key), c.crypt.seal(c.tokenKey(key), p), ttl).Err(); err != nil {
		return fmt.Errorf("client token: %w", err)
	}
	return nil
}

// ClaimClientToken reserves fetching the token of key for ttl; false if
// another replica (or this one) holds the claim.
func (c *RedisClientTokens) ClaimClientToken(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := c.rdb.SetNX(ctx, c.claimKey(key), c.owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("client token claim: %w", err)
	}
	return ok, nil
}

// releaseClaim deletes a claim only if this process holds it.
var releaseClaim = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// ReleaseClientToken drops this process's claim on key.
func (c *RedisClientTokens) ReleaseClientToken(ctx context.Context, key string) error {
	if err := releaseClaim.Run(ctx, c.rdb, []string{c.claimKey(key)}, c.owner).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("client token claim: %w", err)
	}
	return nil
}
