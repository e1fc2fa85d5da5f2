package session

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// listSubjectPages bounds ListSubject's reads: it reads the sub index
// newest first, a page of candidates at a time, and stops after this
// many pages even if expired entries (an idle expiry leaves the index
// entry until the absolute timeout drops it) kept it short of limit.
const listSubjectPages = 8

// ListSubject implements Store: the (app, iss, sub) index (scored by
// creation time) newest first, each page of candidates read in one
// pipeline, until limit live sessions are found.
func (r *RedisStore) ListSubject(ctx context.Context, app, iss, sub string, limit int) ([]*Session, error) {
	if app == "" || iss == "" || sub == "" || limit < 1 {
		return nil, errListSubject
	}
	page := int64(max(limit, 32))
	key := r.subIndexKey(app, iss, sub)
	var out []*Session
	for p := range int64(listSubjectPages) {
		ids, err := r.rdb.ZRevRange(ctx, key, p*page, (p+1)*page-1).Result()
		if err != nil {
			return nil, fmt.Errorf("list subject: %w", err)
		}
		found, err := r.readLive(ctx, ids, func(s *Session) bool {
			return s.App == app && s.Issuer == iss && s.Subject == sub
		})
		if err != nil {
			return nil, fmt.Errorf("list subject: %w", err)
		}
		out = append(out, found...)
		if len(out) >= limit || int64(len(ids)) < page {
			break
		}
	}
	sortNewestFirst(out)
	return out[:min(len(out), limit)], nil
}

// readLive reads the sessions ids in one pipeline and returns the live
// ones that keep accepts; a session gone since the index was read is
// left out.
func (r *RedisStore) readLive(ctx context.Context, ids []string, keep func(*Session) bool) ([]*Session, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, r.sessionKey(id), recordFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	now := r.now()
	var out []*Session
	for _, cmd := range cmds {
		rec := make(map[string]string, len(recordFields))
		for i, v := range cmd.Val() {
			if s, ok := v.(string); ok {
				rec[recordFields[i]] = s
			}
		}
		if len(rec) != len(recordFields) {
			continue
		}
		s, err := r.decode(rec)
		if err != nil {
			return nil, err
		}
		if keep(s) && r.live(s, now) {
			out = append(out, s)
		}
	}
	return out, nil
}
