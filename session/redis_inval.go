package session

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The invalidation channel of the RedisStores sharing a Redis (p.."inv",
// in the store's hash slot on a Cluster) keeps their local caches
// (redis_cache.go) right. Why a pub/sub channel of our own rather than
// Redis's server-assisted client-side caching (CLIENT TRACKING): go-redis
// v9 does not handle tracking invalidations, and tracking is per node
// and per connection, so a Sentinel failover or a Cluster resharding
// would need its own re-arming; a channel works the same on a single
// server, Sentinel and Cluster, go-redis resubscribes it, and a PUBLISH
// inside the write's own Lua script makes write and invalidation one
// atomic step. Three kinds of message, fields separated by spaces:
//
//	i <origin> <nonce> <id>...   sessions changed or ended (published by the write's script)
//	a <origin> <nonce> <from>    replica from has dropped what the i message of origin named
//	p <origin> <t>               heartbeat of origin, every TTL/4; t its send time (its own clock)
//
// The guarantee, with TTL the cache's TTL (default 1 s):
//
//   - A replica serves a session from its cache only while its
//     subscription is confirmed and one of its own heartbeats came back
//     within TTL (sent at most TTL ago), and only entries read at most
//     TTL ago. A connection error flushes the cache at once; so do the
//     confirmation of a new subscription and a heartbeat after a silence
//     longer than TTL. Until then every read goes to Redis: fail closed.
//   - A write that ends or replaces a session (Delete, RevokeSID,
//     RevokeSub, Update, ReplaceTokens) returns only once every replica
//     that heartbeat within 2×TTL has acknowledged its invalidation, or
//     TTL after the write. A replica that has not acknowledged by then
//     has not received its own heartbeats sent after the write either
//     (pub/sub keeps the order of publication), so it stopped using its
//     cache at most TTL after its last heartbeat, before the write
//     returns. Hence: when such a write returns, no replica serves the
//     old record from its cache. An ending replica whose own subscription
//     is younger than TTL cannot know every peer: it also waits until its
//     subscription is TTL old (a peer it has not heard from had its last
//     heartbeat before that subscription; its cache lapses TTL later).
//   - The cost: a write that ends or replaces a session takes a pub/sub
//     round trip (about a millisecond) longer, and up to TTL longer while
//     a replica has just died, restarted or lost its channel.
//   - MarkUpstream does not wait: a replica still holding the old list
//     of upstreams only marks it again, which changes nothing.
//   - A write made outside the gateway (redis-cli) publishes nothing: a
//     cached copy lives at most TTL.

// invalidation is the state of a store's invalidation channel. The
// listener goroutine owns the fields up to members; the others read
// liveUntil.
type invalidation struct {
	subscribed bool          // both channels confirmed since the last drop
	since      time.Duration // mono when they were
	lastLife   time.Duration // send time of the last own heartbeat received; 0 after a drop
	members    map[string]time.Duration

	// liveUntil is lastLife+TTL while subscribed, else 0: the cache may
	// be used until then (mono).
	liveUntil atomic.Int64

	mu      sync.Mutex // guards waiters and nonce
	waiters map[string]*endWait
	nonce   uint64
	acks    chan string   // a messages for the publisher
	kick    chan struct{} // a heartbeat now
}

// endWait is a write waiting for the acknowledgements of its
// invalidation.
type endWait struct {
	done   chan struct{}
	closed bool
	seen   bool            // the store's own message came back
	until  time.Duration   // then, wait at least until (mono): peers may be unknown
	need   map[string]bool // the peers yet to acknowledge, once seen
	acked  map[string]bool // acknowledgements before seen
}

func (w *endWait) finish() {
	if !w.closed {
		w.closed = true
		close(w.done)
	}
}

// cacheGood reports whether the channel is known to work: the cache may
// be used.
func (r *RedisStore) cacheGood() bool {
	u := r.inv.liveUntil.Load()
	return u != 0 && int64(mono()) <= u
}

// expect registers a write about to publish an invalidation and returns
// the message prefix for its script ("i origin nonce") and the wait.
func (r *RedisStore) expect() (string, *endWait) {
	r.inv.mu.Lock()
	defer r.inv.mu.Unlock()
	r.inv.nonce++
	nonce := strconv.FormatUint(r.inv.nonce, 36)
	w := &endWait{done: make(chan struct{}), acked: map[string]bool{}}
	r.inv.waiters[nonce] = w
	return "i " + r.origin + " " + nonce, w
}

// await waits until the invalidation of prefix (from expect) is
// acknowledged, or TTL; published false means the script published
// nothing (it changed nothing). It ignores the caller's context: the
// wait is bounded, and the guarantee holds when the call returns.
func (r *RedisStore) await(prefix string, w *endWait, published bool) {
	nonce := prefix[strings.LastIndexByte(prefix, ' ')+1:]
	defer func() {
		r.inv.mu.Lock()
		delete(r.inv.waiters, nonce)
		r.inv.mu.Unlock()
	}()
	if !published {
		return
	}
	start := time.Now()
	t := time.NewTimer(r.cacheCfg.TTL)
	defer t.Stop()
	select {
	case <-w.done:
		r.inv.mu.Lock()
		until := w.until
		r.inv.mu.Unlock()
		if d := until - mono(); d > 0 {
			u := time.NewTimer(d)
			select {
			case <-u.C:
			case <-t.C:
			}
			u.Stop()
		}
	case <-t.C:
	}
	r.metrics.waits.Observe(time.Since(start).Seconds())
}

// startInvalidation sets up the cache (unless off) and its metrics on
// reg (if not nil), subscribes to the channels and starts the listener
// and the publisher; Close stops them.
func (r *RedisStore) startInvalidation(cc CacheConfig, reg prometheus.Registerer) error {
	r.inv.members = map[string]time.Duration{}
	r.inv.waiters = map[string]*endWait{}
	r.inv.acks = make(chan string, 1024)
	r.inv.kick = make(chan struct{}, 1)
	if !cc.Off {
		r.cache = newRecordCache(cc, r.cacheGood)
		r.metrics = r.cache.metrics
	} else {
		r.metrics = newCacheMetrics()
	}
	if reg != nil {
		entries := func() int {
			if r.cache == nil {
				return 0
			}
			return r.cache.c.ItemCount()
		}
		if err := r.metrics.register(reg, r.cacheGood, entries); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	// Subscribe sends SUBSCRIBE now, before any write of this store can
	// publish: the store hears its own first invalidation.
	ps := r.rdb.Subscribe(ctx, r.channel, r.invChannel)
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.listen(ctx, ps) }()
	go func() { defer r.wg.Done(); r.publisher(ctx) }()
	go func() { r.wg.Wait(); close(r.done) }()
	return nil
}

func (r *RedisStore) flush() {
	if r.cache != nil {
		r.cache.flush()
	}
}

// evict drops the local copies of ids, after a write here.
func (r *RedisStore) evict(ids ...string) {
	if r.cache != nil {
		r.cache.invalidate(ids...)
	}
}

// delivered handles the return of the store's own invalidation: from
// now on, the peers that heartbeat within 2×TTL must acknowledge it.
func (r *RedisStore) delivered(nonce string) {
	now := mono()
	for o, at := range r.inv.members {
		if now-at > 2*r.cacheCfg.TTL {
			delete(r.inv.members, o)
		}
	}
	r.inv.mu.Lock()
	defer r.inv.mu.Unlock()
	w := r.inv.waiters[nonce]
	if w == nil || w.seen {
		return
	}
	w.seen = true
	if now-r.inv.since < r.cacheCfg.TTL {
		// A peer whose last heartbeat came before this subscription is
		// unknown, but its cache lapses TTL after that heartbeat.
		w.until = r.inv.since + r.cacheCfg.TTL
	}
	w.need = map[string]bool{}
	for o := range r.inv.members {
		if o != r.origin && !w.acked[o] {
			w.need[o] = true
		}
	}
	if len(w.need) == 0 {
		w.finish()
	}
}

// acked records from's acknowledgement of the invalidation nonce.
func (r *RedisStore) acked(nonce, from string) {
	r.inv.mu.Lock()
	defer r.inv.mu.Unlock()
	w := r.inv.waiters[nonce]
	if w == nil {
		return
	}
	if !w.seen {
		w.acked[from] = true
		return
	}
	if w.need == nil {
		return
	}
	delete(w.need, from)
	if len(w.need) == 0 {
		w.finish()
	}
}
