package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Ending sessions in Redis: Delete and the revocations read the keys
// they will touch first (redis_keys.go), then run a script with all of
// them declared.

// Delete implements Store.
func (r *RedisStore) Delete(ctx context.Context, id string) (*Session, error) {
	minLast, minCreated := r.thresholds(r.now())
	msg, w := r.expect()
	v, err := r.runDeclared(ctx, scriptDelete, func(ctx context.Context) ([]string, error) {
		return r.recordKeys(ctx, []string{id})
	}, r.prefix, minLast, minCreated, r.invChannel, msg+" "+id)
	r.evict(id)
	r.await(msg, w, err == nil && v != nil)
	switch {
	case err != nil:
		return nil, fmt.Errorf("delete session: %w", err)
	case v == nil:
		return nil, ErrNotFound
	}
	return r.decodeHash(v)
}

// RevokeSID implements Store.
func (r *RedisStore) RevokeSID(ctx context.Context, app, iss, sid, sub string, now time.Time) ([]*Session, error) {
	if app == "" || iss == "" || sid == "" {
		return nil, errors.New("revoke sid: app, issuer and sid are required")
	}
	v, err := r.revoke(ctx, r.sidIndexKey(app, iss, sid), r.sidTombKey(app, iss, sid), sub, now, "0")
	if err != nil {
		return nil, fmt.Errorf("revoke sid: %w", err)
	}
	return v, nil
}

// RevokeSub implements Store.
func (r *RedisStore) RevokeSub(ctx context.Context, app, iss, sub string, now time.Time) ([]*Session, error) {
	if app == "" || iss == "" || sub == "" {
		return nil, errors.New("revoke sub: app, issuer and subject are required")
	}
	v, err := r.revoke(ctx, r.subIndexKey(app, iss, sub), r.subTombKey(app, iss, sub), "", now, "1")
	if err != nil {
		return nil, fmt.Errorf("revoke sub: %w", err)
	}
	return v, nil
}

// tombTTL is how long Redis keeps a tombstone set at at: its logical
// lifetime (the absolute timeout) plus slack.
func (r *RedisStore) tombTTL(at, cur time.Time) int64 {
	return ms(max(at.Add(r.timeouts.Absolute).Sub(cur), 0) + gcSlack)
}

// decodeList decodes a revocation's reply, oldest first.
func (r *RedisStore) decodeList(v any) ([]*Session, error) {
	list, _ := v.([]any)
	out := make([]*Session, 0, len(list))
	for _, h := range list {
		s, err := r.decodeHash(h)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sortSessions(out)
	return out, nil
}

// revoke runs scriptRevoke on the sessions of an index (a sid's or a
// subject's) and writes its tombstone: sub, if set, limits the live
// sessions ended to that subject's; dropIndex "1" also deletes the index
// (a subject's), "0" keeps it (a sid's).
func (r *RedisStore) revoke(ctx context.Context, index, tomb, sub string, now time.Time, dropIndex string) ([]*Session, error) {
	cur := r.now()
	minLast, minCreated := r.thresholds(cur)
	msg, w := r.expect()
	v, err := r.runDeclared(ctx, scriptRevoke, func(ctx context.Context) ([]string, error) {
		return r.revokeKeys(ctx, index, tomb)
	}, r.prefix, sub, stamp(now), minLast, minCreated, stamp(cur.Add(-r.timeouts.Absolute)), r.tombTTL(now, cur), dropIndex,
		r.invChannel, msg)
	if err != nil {
		r.await(msg, w, false)
		return nil, err
	}
	ss, err := r.decodeList(v)
	for _, s := range ss {
		r.evict(s.ID)
	}
	list, _ := v.([]any)
	r.await(msg, w, len(list) > 0)
	return ss, err
}
