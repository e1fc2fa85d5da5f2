package session

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// List implements Store. With a sid or a subject it reads that index of
// each known (app, iss) the filter admits; with only an app, the app's
// index. Then it reads the candidates in one pipeline and keeps the live
// ones that match.
func (r *RedisStore) List(ctx context.Context, f Filter) ([]*Session, error) {
	if err := validFilter(f); err != nil {
		return nil, err
	}
	ids, err := r.candidates(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := r.readLive(ctx, ids, func(s *Session) bool {
		return (f.App == "" || s.App == f.App) && (f.Issuer == "" || s.Issuer == f.Issuer) &&
			(f.Subject == "" || s.Subject == f.Subject) && (f.SID == "" || s.SID == f.SID)
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	sortSessions(out)
	return out, nil
}

// candidates returns the ids the indexes give for f, without duplicates.
func (r *RedisStore) candidates(ctx context.Context, f Filter) ([]string, error) {
	var keys []string
	if f.SID == "" && f.Subject == "" {
		keys = []string{r.appIndexKey(f.App)}
	} else {
		kind, v := "sub:", f.Subject
		if f.SID != "" {
			kind, v = "sid:", f.SID
		}
		var pairs []string
		if f.App != "" && f.Issuer != "" {
			pairs = []string{r.pairKey(f.App, f.Issuer)}
		} else {
			all, err := r.rdb.SMembers(ctx, r.pairsKey()).Result()
			if err != nil {
				return nil, err
			}
			for _, p := range all {
				app, iss, _ := strings.Cut(p, "\x00")
				if (f.App == "" || app == f.App) && (f.Issuer == "" || iss == f.Issuer) {
					pairs = append(pairs, p)
				}
			}
		}
		for _, p := range pairs {
			keys = append(keys, r.prefix+kind+p+"\x00"+v)
		}
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.ZRange(ctx, k, 0, -1)
	}
	if len(keys) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var ids []string
	for _, c := range cmds {
		for _, id := range c.Val() {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
