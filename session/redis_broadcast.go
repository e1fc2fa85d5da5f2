package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// endedMessage is what a replica publishes when sessions end there.
type endedMessage struct {
	Origin string   `json:"o"`
	Cause  Cause    `json:"c"`
	IDs    []string `json:"ids"`
}

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

// listen receives the other replicas' broadcasts until ctx ends. go-redis
// resubscribes by itself after a connection loss (and health-checks the
// connection every second); messages published while it was away are
// lost, which only delays a remote logout event: every request still
// checks the session in Redis.
func (r *RedisStore) listen(ctx context.Context) {
	defer close(r.done)
	ps := r.rdb.Subscribe(ctx, r.channel)
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(time.Second), redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			r.received(msg.Payload)
		}
	}
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
