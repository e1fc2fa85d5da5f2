package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for the zero fields of RedisQueueConfig.
const (
	DefaultRedisQueueStream = "bffgate:notify"
	DefaultRedisQueueGroup  = "bffgate"
	DefaultRedisQueueMaxLen = 100000
)

// RedisQueueConfig configures a RedisQueue. Zero fields take defaults.
type RedisQueueConfig struct {
	// Stream is the stream's key. Default "bffgate:notify".
	Stream string
	// Group is the consumer group every replica joins. Default "bffgate".
	Group string
	// Consumer names this replica in the group; it must differ between
	// replicas. Default: host name, pid and a random suffix.
	Consumer string
	// ClaimIdle is how long an entry may stay unacknowledged by its
	// consumer before another claims it (XAUTOCLAIM). This replica
	// renews the claim on its entries in delivery every ClaimIdle/3, so
	// only a dead (or stalled) replica's entries go. Default 30s.
	ClaimIdle time.Duration
	// Block is how long one XREADGROUP waits for new entries; Close takes
	// effect within it. Default 1s.
	Block time.Duration
	// MaxLen caps the stream (approximately). Default 100000.
	MaxLen int64
	// Logger; nil discards.
	Logger *slog.Logger
}

// RedisQueue is a durable Queue on a Redis Stream with a consumer group,
// shared by every replica. Push adds an entry (XADD); Pop reads new
// entries (XREADGROUP), and first claims those another consumer left
// unacknowledged for ClaimIdle (XAUTOCLAIM): that consumer died in the
// middle of a delivery. The notifier acknowledges an entry (XACK, then
// XDEL) once it has a final outcome, so delivery is at least once; the
// entry keeps the notification's claims and jti, and the token is signed
// again at each attempt.
type RedisQueue struct {
	rdb redis.UniversalClient
	cfg RedisQueueConfig
	log *slog.Logger

	mu        sync.Mutex
	closed    bool
	claimed   []Notification      // claimed but not yet popped
	nextClaim time.Time           // when to XAUTOCLAIM next
	cursor    string              // XAUTOCLAIM cursor
	inflight  map[string]struct{} // entry ids popped and not acked
	groupOK   bool
	renewing  bool // the renewal goroutine runs (started by the first Pop)

	stop chan struct{}
	done chan struct{}
}

var _ durableQueue = (*RedisQueue)(nil)

// NewRedisQueue returns a queue on rdb, which the caller owns. The first
// Pop starts the goroutine that renews this replica's claims; Close stops
// it. The consumer group is created on first use.
func NewRedisQueue(rdb redis.UniversalClient, cfg RedisQueueConfig) *RedisQueue {
	if cfg.Stream == "" {
		cfg.Stream = DefaultRedisQueueStream
	}
	if cfg.Group == "" {
		cfg.Group = DefaultRedisQueueGroup
	}
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), NewJTI()[:8])
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = DefaultNotifyClaimIdle
	}
	if cfg.Block <= 0 {
		cfg.Block = time.Second
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = DefaultRedisQueueMaxLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := &RedisQueue{
		rdb: rdb, cfg: cfg, log: cfg.Logger,
		cursor:   "0-0",
		inflight: map[string]struct{}{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	return q
}

// Push implements Queue: one XADD.
func (q *RedisQueue) Push(ctx context.Context, n Notification) error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return ErrQueueClosed
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("queue notification: %w", err)
	}
	err = q.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: q.cfg.Stream, MaxLen: q.cfg.MaxLen, Approx: true,
		Values: []any{"n", b},
	}).Err()
	if err != nil {
		return fmt.Errorf("queue notification: %w", err)
	}
	return nil
}

// Pop implements Queue. It returns a claimed entry first, else waits up
// to Block for a new one, looping until ctx ends or the queue is closed.
// After Close it returns ErrQueueClosed at once: what is left stays in
// Redis for the other replicas.
func (q *RedisQueue) Pop(ctx context.Context) (Notification, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Notification{}, err
		}
		if !q.startRenewing() {
			return Notification{}, ErrQueueClosed
		}
		if err := q.ensureGroup(ctx); err != nil {
			return Notification{}, err
		}
		if n, ok, err := q.popClaimed(ctx); err != nil || ok {
			return n, err
		}
		res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.cfg.Group, Consumer: q.cfg.Consumer,
			Streams: []string{q.cfg.Stream, ">"}, Count: 1, Block: q.cfg.Block,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // nothing new within Block
		case err != nil && strings.HasPrefix(err.Error(), "NOGROUP"):
			q.mu.Lock()
			q.groupOK = false // the stream was deleted: create it again
			q.mu.Unlock()
			continue
		case err != nil:
			return Notification{}, fmt.Errorf("read notification queue: %w", err)
		}
		for _, s := range res {
			for _, m := range s.Messages {
				if n, ok := q.decode(ctx, m); ok {
					return n, nil
				}
			}
		}
	}
}

// startRenewing starts the claim renewal if it does not run yet; it
// returns false once the queue is closed.
func (q *RedisQueue) startRenewing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if !q.renewing {
		q.renewing = true
		go q.renew()
	}
	return true
}

// ensureGroup creates the stream and the group if needed.
func (q *RedisQueue) ensureGroup(ctx context.Context) error {
	q.mu.Lock()
	ok := q.groupOK
	q.mu.Unlock()
	if ok {
		return nil
	}
	err := q.rdb.XGroupCreateMkStream(ctx, q.cfg.Stream, q.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create notification queue group: %w", err)
	}
	q.mu.Lock()
	q.groupOK = true
	q.mu.Unlock()
	return nil
}

// popClaimed returns an entry another consumer left idle for ClaimIdle,
// claiming a batch at most every ClaimIdle/4.
func (q *RedisQueue) popClaimed(ctx context.Context) (Notification, bool, error) {
	q.mu.Lock()
	if len(q.claimed) == 0 && time.Now().After(q.nextClaim) {
		q.nextClaim = time.Now().Add(q.cfg.ClaimIdle / 4)
		cursor := q.cursor
		q.mu.Unlock()
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.cfg.Stream, Group: q.cfg.Group, Consumer: q.cfg.Consumer,
			MinIdle: q.cfg.ClaimIdle, Start: cursor, Count: 16,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return Notification{}, false, fmt.Errorf("claim notifications: %w", err)
		}
		var ns []Notification
		for _, m := range msgs {
			if n, ok := q.decode(ctx, m); ok {
				q.log.Warn("downstream logout claimed from another replica", "app", n.App, "target", n.Target, "jti", n.JTI)
				ns = append(ns, n)
			}
		}
		q.mu.Lock()
		q.claimed = append(q.claimed, ns...)
		if next == "" {
			next = "0-0"
		}
		q.cursor = next
		if next != "0-0" {
			q.nextClaim = time.Time{} // more to scan: go on at once
		}
	}
	defer q.mu.Unlock()
	if len(q.claimed) == 0 {
		return Notification{}, false, nil
	}
	n := q.claimed[0]
	q.claimed = q.claimed[1:]
	return n, true, nil
}

// decode reads one entry and marks it in flight. An entry that does not
// decode is acknowledged and dropped, with a log line.
func (q *RedisQueue) decode(ctx context.Context, m redis.XMessage) (Notification, bool) {
	var n Notification
	raw, _ := m.Values["n"].(string)
	if err := json.Unmarshal([]byte(raw), &n); err != nil {
		q.log.Error("notification queue: dropping an entry that does not decode", "id", m.ID, "err", err)
		q.ack(ctx, m.ID)
		return Notification{}, false
	}
	n.receipt = m.ID
	q.mu.Lock()
	q.inflight[m.ID] = struct{}{}
	q.mu.Unlock()
	return n, true
}

// Ack removes n from the stream (XACK and XDEL in one round trip).
func (q *RedisQueue) Ack(ctx context.Context, n Notification) error {
	if n.receipt == "" {
		return errors.New("ack notification: not from this queue")
	}
	q.mu.Lock()
	delete(q.inflight, n.receipt)
	q.mu.Unlock()
	return q.ack(ctx, n.receipt)
}

func (q *RedisQueue) ack(ctx context.Context, id string) error {
	pipe := q.rdb.TxPipeline()
	pipe.XAck(ctx, q.cfg.Stream, q.cfg.Group, id)
	pipe.XDel(ctx, q.cfg.Stream, id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ack notification: %w", err)
	}
	return nil
}

// renew resets the idle time of this replica's entries in delivery every
// ClaimIdle/3 (XCLAIM to itself), so that a slow delivery, retrying
// against a receiver that answers 503, is not claimed by another replica.
func (q *RedisQueue) renew() {
	defer close(q.done)
	t := time.NewTicker(q.cfg.ClaimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		q.mu.Lock()
		ids := make([]string, 0, len(q.inflight))
		for id := range q.inflight {
			ids = append(ids, id)
		}
		q.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.ClaimIdle/3)
		err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: q.cfg.Stream, Group: q.cfg.Group, Consumer: q.cfg.Consumer,
			MinIdle: 0, Messages: ids,
		}).Err()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			q.log.Warn("notification queue: renewing claims failed", "err", err)
		}
	}
}

// Close implements Queue: Push and Pop refuse from now on, and the claim
// renewal stops, so that another replica claims what this one has not
// acknowledged once ClaimIdle passes. It is safe to call more than once.
func (q *RedisQueue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.claimed = nil // still pending in Redis: others claim them
	renewing := q.renewing
	q.mu.Unlock()
	close(q.stop)
	if renewing {
		<-q.done
	}
	return nil
}
