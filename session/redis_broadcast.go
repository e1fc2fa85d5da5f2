package session

import (
	"context"
	"encoding/json"
	"fmt"
)

// endedMessage is what a replica publishes when sessions end there.
type endedMessage struct {
	Origin string   `json:"o"`
	Cause  Cause    `json:"c"`
	IDs    []string `json:"ids"`
}

// The listener of the channel is in redis_inval.go: one subscription
// to both channels, the ended one here and the invalidation one. A
// message published while it was away is lost, which only delays a
// remote logout event (the session is gone from Redis already, and the
// cache is flushed and bypassed until the subscription is back).

// Broadcast tells the other replicas sharing the store that the sessions
// with these ids ended here, for cause (one PUBLISH). Manager calls it
// after its own observers; the other replicas' Managers pass it on to
// their RemoteObservers.
func (r *RedisStore) Broadcast(ctx context.Context, cause Cause, ids []string) error {
	b, err := json.Marshal(endedMessage{Origin: r.origin, Cause: cause, IDs: ids})
	if err != nil {
		return err
	}
	if err := r.rdb.Publish(ctx, r.channel, b).Err(); err != nil {
		return fmt.Errorf("broadcast ended sessions: %w", err)
	}
	return nil
}

// SetOnRemoteEnd sets the function told of each session that another
// replica ended (NewManager does); nil turns it off.
func (r *RedisStore) SetOnRemoteEnd(f func(cause Cause, id string)) {
	r.onRemMu.Lock()
	r.onRemote = f
	r.onRemMu.Unlock()
}

func (r *RedisStore) received(payload string) {
	var m endedMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		r.log.Warn("session broadcast: bad message", "err", err)
		return
	}
	if m.Origin == r.origin {
		return
	}
	// The ending script published the invalidation already; this covers
	// the replicas of a version before the cache, during an upgrade.
	r.evict(m.IDs...)
	r.onRemMu.RLock()
	f := r.onRemote
	r.onRemMu.RUnlock()
	if f == nil {
		return
	}
	for _, id := range m.IDs {
		f(m.Cause, id)
	}
}
