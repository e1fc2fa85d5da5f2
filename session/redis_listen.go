package session

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"
)

// The listener and the publisher of a RedisStore's channels (the
// protocol and the guarantee are in redis_inval.go).

// listen keeps the subscription to both channels until ctx ends,
// subscribing again (with a backoff) after each drop.
func (r *RedisStore) listen(ctx context.Context, ps *redis.PubSub) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 20*time.Millisecond, 2*time.Second
	for {
		confirmed, err := r.receive(ctx, ps)
		if confirmed {
			b.Reset()
		}
		ps.Close()
		r.dropped()
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("session invalidation channel dropped; reading every session from Redis until it is back", "err", err)
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ps = r.rdb.Subscribe(ctx, r.channel, r.invChannel)
	}
}

// errSilent means no message arrived for longer than the TTL.
var errSilent = errors.New("no message (not even a heartbeat) within the cache TTL")

// receive handles the messages of ps until it fails or goes silent, and
// reports whether the subscription was confirmed meanwhile.
func (r *RedisStore) receive(ctx context.Context, ps *redis.PubSub) (bool, error) {
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	confirmed := 0
	last := mono()
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.beat)
		if ctx.Err() != nil {
			return confirmed == 2, ctx.Err()
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return confirmed == 2, err
			}
			if r.cache != nil && mono()-last > r.cacheCfg.TTL {
				return confirmed == 2, errSilent
			}
			continue
		}
		last = mono()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if confirmed++; confirmed == 2 {
					r.subscribed()
				}
			}
		case *redis.Message:
			if m.Channel == r.channel {
				r.received(m.Payload)
			} else {
				r.invMessage(m.Payload)
			}
		}
	}
}

// subscribed records a confirmed subscription: the cache starts afresh
// (invalidations may have been lost before), and is used once a
// heartbeat came back.
func (r *RedisStore) subscribed() {
	r.inv.liveUntil.Store(0)
	r.flush()
	r.inv.subscribed, r.inv.since, r.inv.lastLife = true, mono(), 0
	select {
	case r.inv.kick <- struct{}{}:
	default:
	}
}

// dropped records the loss of the subscription: bypass and flush.
func (r *RedisStore) dropped() {
	r.inv.liveUntil.Store(0)
	r.inv.subscribed, r.inv.since, r.inv.lastLife = false, 0, 0
	r.flush()
}

// invMessage handles a message of the invalidation channel.
func (r *RedisStore) invMessage(payload string) {
	f := strings.Fields(payload)
	if len(f) < 3 {
		return
	}
	switch kind, origin := f[0], f[1]; kind {
	case "p":
		r.inv.members[origin] = mono()
		if origin != r.origin {
			return
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return
		}
		r.heard(time.Duration(n))
	case "i":
		r.evict(f[3:]...)
		if origin == r.origin {
			r.delivered(f[2])
		} else if r.cache != nil {
			select {
			case r.inv.acks <- "a " + origin + " " + f[2] + " " + r.origin:
			default: // the writer waits for the TTL instead
			}
		}
	case "a":
		if origin == r.origin && len(f) == 4 {
			r.acked(f[2], f[3])
		}
	}
}

// heard records the return of an own heartbeat sent at sent.
func (r *RedisStore) heard(sent time.Duration) {
	if !r.inv.subscribed || sent <= r.inv.lastLife || sent > mono() {
		return
	}
	if r.inv.lastLife != 0 && mono()-r.inv.lastLife > r.cacheCfg.TTL {
		r.flush() // silent for longer than TTL: messages may be lost
	}
	r.inv.lastLife = sent
	r.inv.liveUntil.Store(int64(sent + r.cacheCfg.TTL))
}

// publisher sends the heartbeats (if the store caches) and the
// acknowledgements, and deletes expired cache entries, until ctx ends.
func (r *RedisStore) publisher(ctx context.Context) {
	var tick <-chan time.Time
	if r.cache != nil {
		t := time.NewTicker(r.beat)
		defer t.Stop()
		tick = t.C
	}
	pub := func(msg string) {
		pctx, cancel := context.WithTimeout(ctx, r.cacheCfg.TTL)
		defer cancel()
		if err := r.rdb.Publish(pctx, r.invChannel, msg).Err(); err != nil && ctx.Err() == nil {
			r.log.Debug("session invalidation channel: publish", "err", err)
		}
	}
	beat := func() {
		if r.cache != nil {
			pub("p " + r.origin + " " + strconv.FormatInt(int64(mono()), 10))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			beat()
			r.cache.c.DeleteExpired()
		case <-r.inv.kick:
			beat()
		case msg := <-r.inv.acks:
			pub(msg)
		}
	}
}
