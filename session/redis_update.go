package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The narrow updates of a RedisStore read the record, compute the new
// value of the fields they change (the tokens are sealed, so a script
// cannot edit them) and write them with scriptSwap, which succeeds only
// if those fields still hold what was read: a compare-and-set. A lost
// race reads again.

// swapAttempts bounds the compare-and-set retries of one update.
const swapAttempts = 16

// scriptSwap: KEYS[1] the session. ARGV: min last, min created,
// invalidation channel, invalidation message, then triples of field,
// expected value, new value. It writes the new values only if every
// field holds its expected value, and then publishes the message.
// Returns 1 if written, 2 if a field changed meanwhile, 0 if the session
// is gone.
var scriptSwap = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
if not v[1] or not v[2] then return 0 end
if v[2] < ARGV[1] or v[1] < ARGV[2] then return 0 end
for i = 5, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 2 end
end
for i = 5, #ARGV, 3 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// scriptClaim: KEYS[1] the session. ARGV: min last, min created, now,
// until. The claim, field rc, is "until sha1(t)": it holds while until is
// later than now and the sealed tokens t are those it was made for.
// Returns 1 if claimed, 2 if a live claim holds, 0 if the session is gone.
var scriptClaim = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'c', 'l', 't', 'rc')
if not v[1] or not v[2] or not v[3] then return 0 end
if v[2] < ARGV[1] or v[1] < ARGV[2] then return 0 end
local version = redis.sha1hex(v[3])
if v[4] then
  local untilStamp, claimed = string.match(v[4], '^(%d+) (%x+)$')
  if untilStamp and untilStamp > ARGV[3] and claimed == version then return 2 end
end
redis.call('HSET', KEYS[1], 'rc', ARGV[4] .. ' ' .. version)
return 1
`)

// ClaimRefresh implements Store. It drops the local copy of the
// session: a refresh reads the stored tokens next, which must be
// Redis's.
func (r *RedisStore) ClaimRefresh(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	r.evict(id)
	now := r.now()
	minLast, minCreated := r.thresholds(now)
	n, err := scriptClaim.Run(ctx, r.rdb, []string{r.sessionKey(id)}, minLast, minCreated, stamp(now), stamp(now.Add(ttl))).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("claim refresh: %w", err)
	case n == 0:
		return false, ErrNotFound
	}
	return n == 1, nil
}

// ReleaseRefresh implements Store.
func (r *RedisStore) ReleaseRefresh(ctx context.Context, id string) error {
	if err := r.rdb.HDel(ctx, r.sessionKey(id), "rc").Err(); err != nil {
		return fmt.Errorf("release refresh: %w", err)
	}
	return nil
}

// errContended means an update lost the compare-and-set swapAttempts
// times in a row.
var errContended = errors.New("too many concurrent writes")

// swap runs scriptSwap for the session id with the field triples; msg
// is the invalidation prefix it publishes on a write (see expect).
func (r *RedisStore) swap(ctx context.Context, id, msg string, triples ...string) (int, error) {
	defer r.evict(id)
	minLast, minCreated := r.thresholds(r.now())
	args := make([]any, 0, 4+len(triples))
	args = append(args, minLast, minCreated, r.invChannel, msg+" "+id)
	for _, t := range triples {
		args = append(args, t)
	}
	return scriptSwap.Run(ctx, r.rdb, []string{r.sessionKey(id)}, args...).Int()
}

// read returns the raw fields and the decoded session of the live
// session with that id: one HMGET.
func (r *RedisStore) read(ctx context.Context, id string) (map[string]string, *Session, error) {
	vals, err := r.rdb.HMGet(ctx, r.sessionKey(id), recordFields...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("get session: %w", err)
	}
	f := make(map[string]string, len(recordFields))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, nil, ErrNotFound // no such record (or a torn one)
		}
		f[recordFields[i]] = str
	}
	s, err := r.decode(f)
	if err != nil {
		return nil, nil, err
	}
	if !r.live(s, r.now()) {
		return nil, nil, ErrNotFound
	}
	return f, s, nil
}

// MarkUpstream implements Store.
func (r *RedisStore) MarkUpstream(ctx context.Context, id, name string) error {
	for range swapAttempts {
		vals, err := r.rdb.HMGet(ctx, r.sessionKey(id), "c", "l", "m").Result()
		if err != nil {
			return fmt.Errorf("mark upstream: %w", err)
		}
		c, _ := vals[0].(string)
		l, _ := vals[1].(string)
		old, ok := vals[2].(string)
		minLast, minCreated := r.thresholds(r.now())
		if !ok || l < minLast || c < minCreated {
			return ErrNotFound
		}
		var m meta
		if err := json.Unmarshal([]byte(old), &m); err != nil {
			return fmt.Errorf("mark upstream: %w", err)
		}
		i, found := slices.BinarySearch(m.Upstreams, name)
		if found {
			return nil
		}
		m.Upstreams = slices.Insert(m.Upstreams, i, name)
		mb, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("mark upstream: %w", err)
		}
		// No wait: a replica that still has the old list of upstreams
		// marks the upstream again, which changes nothing.
		switch n, err := r.swap(ctx, id, "i "+r.origin+" -", "m", old, string(mb)); {
		case err != nil:
			return fmt.Errorf("mark upstream: %w", err)
		case n == 0:
			return ErrNotFound
		case n == 1:
			return nil
		}
	}
	return fmt.Errorf("mark upstream: %w", errContended)
}

// ReplaceTokens implements Store.
func (r *RedisStore) ReplaceTokens(ctx context.Context, id, from string, t Tokens) (*Session, bool, error) {
	for range swapAttempts {
		f, s, err := r.read(ctx, id)
		if err != nil {
			return nil, false, err
		}
		if s.RefreshToken != from {
			return s, false, nil
		}
		s.AccessToken, s.RefreshToken, s.TokenExpiry, s.TokenIssued, s.TokenType = t.AccessToken, t.RefreshToken, t.Expiry, t.Issued, t.TokenType
		if t.Claims != nil {
			s.Claims = t.Claims
		}
		m, sealed, err := r.encode(s)
		if err != nil {
			return nil, false, fmt.Errorf("replace tokens: %w", err)
		}
		msg, w := r.expect()
		n, err := r.swap(ctx, id, msg, "m", f["m"], m, "t", f["t"], string(sealed))
		r.await(msg, w, err == nil && n == 1)
		switch {
		case err != nil:
			return nil, false, fmt.Errorf("replace tokens: %w", err)
		case n == 0:
			return nil, false, ErrNotFound
		case n == 1:
			return s, true, nil
		}
	}
	return nil, false, fmt.Errorf("replace tokens: %w", errContended)
}

// countBatch is how many sessions Count reads per pipeline.
const countBatch = 1000

// Count implements Store: it reads the app's index (ids created within
// the absolute timeout) and the c and l fields of each, in pipelines of
// countBatch.
func (r *RedisStore) Count(ctx context.Context, app string) (int, error) {
	now := r.now()
	fromMs := strconv.FormatInt(now.Add(-r.timeouts.Absolute).UnixMilli(), 10)
	ids, err := r.rdb.ZRangeByScore(ctx, r.appIndexKey(app), &redis.ZRangeBy{Min: fromMs, Max: "+inf"}).Result()
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	minLast, minCreated := r.thresholds(now)
	n := 0
	for batch := range slices.Chunk(ids, countBatch) {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(batch))
		for i, id := range batch {
			cmds[i] = pipe.HMGet(ctx, r.sessionKey(id), "c", "l")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("count sessions: %w", err)
		}
		for _, cmd := range cmds {
			v := cmd.Val()
			c, _ := v[0].(string)
			l, _ := v[1].(string)
			if c != "" && l != "" && l >= minLast && c >= minCreated {
				n++
			}
		}
	}
	return n, nil
}
