package session

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"
)

// The key names of redis_scripts.go. Every key starts with the store's
// prefix, so that on a Cluster ("{bffgate}:") all of them are in one hash
// slot and a script may touch any set of them.

func (r *RedisStore) pairKey(app, iss string) string { return app + "\x00" + iss }
func (r *RedisStore) sidIndexKey(app, iss, sid string) string {
	return r.prefix + "sid:" + r.pairKey(app, iss) + "\x00" + sid
}
func (r *RedisStore) subIndexKey(app, iss, sub string) string {
	return r.prefix + "sub:" + r.pairKey(app, iss) + "\x00" + sub
}
func (r *RedisStore) appIndexKey(app string) string { return r.prefix + "app:" + app }
func (r *RedisStore) pairsKey() string              { return r.prefix + "pairs" }
func (r *RedisStore) sidTombKey(app, iss, sid string) string {
	return r.prefix + "tomb:sid:" + r.pairKey(app, iss) + "\x00" + sid
}
func (r *RedisStore) subTombKey(app, iss, sub string) string {
	return r.prefix + "tomb:sub:" + r.pairKey(app, iss) + "\x00" + sub
}

// indexKeys are the keys of the indexes listing a session with these
// fields, as the scripts' indexKeys derives them.
func (r *RedisStore) indexKeys(app, iss, sub, sid string) []string {
	ks := []string{r.subIndexKey(app, iss, sub), r.appIndexKey(app)}
	if sid != "" {
		ks = append(ks, r.sidIndexKey(app, iss, sid))
	}
	return ks
}

// createKeys are scriptCreate's KEYS for s.
func (r *RedisStore) createKeys(s *Session) []string {
	ks := []string{
		r.sessionKey(s.ID), r.subTombKey(s.App, s.Issuer, s.Subject),
		r.subIndexKey(s.App, s.Issuer, s.Subject), r.appIndexKey(s.App), r.pairsKey(),
	}
	if s.SID != "" {
		ks = append(ks, r.sidTombKey(s.App, s.Issuer, s.SID), r.sidIndexKey(s.App, s.Issuer, s.SID))
	}
	return ks
}

// indexFields are the fields of a session hash its index keys derive
// from.
var indexFields = []string{"app", "iss", "sub", "sid"}

// recordKeys returns the keys of sessions ids and of their indexes, read
// in one pipeline; a session that is gone has none.
func (r *RedisStore) recordKeys(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, r.sessionKey(id), indexFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var ks []string
	for i, c := range cmds {
		ks = append(ks, r.sessionKey(ids[i]))
		v := c.Val()
		app, _ := v[0].(string)
		iss, _ := v[1].(string)
		sub, _ := v[2].(string)
		sid, _ := v[3].(string)
		if app != "" {
			ks = append(ks, r.indexKeys(app, iss, sub, sid)...)
		}
	}
	return ks, nil
}

// revokeKeys are scriptRevoke's KEYS: the index, the tombstone, and the
// sessions the index lists now with their indexes.
func (r *RedisStore) revokeKeys(ctx context.Context, index, tomb string) ([]string, error) {
	ids, err := r.rdb.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	ks, err := r.recordKeys(ctx, ids)
	if err != nil {
		return nil, err
	}
	ks = append([]string{index, tomb}, ks...)
	// Dedupe after the first two, which the script addresses by position.
	rest := ks[2:]
	slices.Sort(rest)
	return append(ks[:2], slices.Compact(rest)...), nil
}

// errRetryKeys is a script's "retry": the keys it needed changed between
// the read and the script.
var errRetryKeys = errors.New("the session keys changed while they were read")

// declaredRetryFor bounds runDeclared in time, not in tries: each retry
// means a session was created or ended under the same index between the
// read and the script, and under a burst of sign-ins for one user (or a
// starved CPU) that can happen many times in a row; it stops once the
// burst has passed. The caller's context may end it sooner.
const declaredRetryFor = 5 * time.Second

// runDeclared runs script with the keys that keys returns (read from
// Redis), and again if the script answers "retry", with a short backoff
// for at most declaredRetryFor. A nil reply is a nil value.
func (r *RedisStore) runDeclared(ctx context.Context, script *redis.Script, keys func(context.Context) ([]string, error), args ...any) (any, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Millisecond, 50*time.Millisecond
	return backoff.Retry(ctx, func() (any, error) {
		ks, err := keys(ctx)
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		v, err := script.Run(ctx, r.rdb, ks, args...).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		if s, ok := v.(string); ok && s == "retry" {
			return nil, errRetryKeys
		}
		return v, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(declaredRetryFor))
}
