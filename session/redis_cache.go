package session

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"github.com/prometheus/client_golang/prometheus"
)

// The local cache of a RedisStore keeps decoded session records, so that
// a hot session's requests neither go to Redis nor decrypt the record
// again. It is invalidated by the store's invalidation channel (see
// redis_inval.go, which also states the guarantee) and used only while
// that channel is known to work.

// Get implements Store: from the local cache, or one HMGET.
func (r *RedisStore) Get(ctx context.Context, id string) (*Session, error) {
	if s, ok := r.cached(id); ok {
		return s.Clone(), nil
	}
	return r.load(ctx, id)
}

// View is Get without the session's Claims, for Manager.View: from the
// cache it shares the cached Upstreams, clipped so that adding to them
// copies (one allocation instead of three).
func (r *RedisStore) View(ctx context.Context, id string) (*Session, error) {
	if s, ok := r.cached(id); ok {
		v := *s
		v.Claims, v.Upstreams = nil, slices.Clip(s.Upstreams)
		return &v, nil
	}
	s, err := r.load(ctx, id)
	if s != nil {
		s.Claims = nil
	}
	return s, err
}

// cached returns the cache's own copy of the live session id, if any.
func (r *RedisStore) cached(id string) (*Session, bool) {
	if r.cache == nil {
		return nil, false
	}
	s, ok := r.cache.get(id)
	if !ok || !r.live(s, r.now()) {
		return nil, false
	}
	return s, true
}

// load reads the session from Redis (one HMGET) and caches it.
func (r *RedisStore) load(ctx context.Context, id string) (*Session, error) {
	if r.cache == nil {
		_, s, err := r.read(ctx, id)
		return s, err
	}
	tok := r.cache.begin()
	_, s, err := r.read(ctx, id)
	if err == nil {
		r.cache.put(tok, s)
	}
	return s, err
}

// CacheConfig configures a RedisStore's local cache of session records.
type CacheConfig struct {
	// Off turns the cache off: every read goes to Redis. The store still
	// publishes its invalidations and waits for the other replicas'
	// acknowledgements, for those that cache.
	Off bool
	// TTL bounds the age of an entry, and how long the invalidation
	// channel may stay silent before the cache is bypassed: the time a
	// silent loss of the channel can go unnoticed. Heartbeats go every
	// TTL/4. Default DefaultCacheTTL.
	TTL time.Duration
	// MaxEntries bounds the number of entries; a record read when the
	// cache is full is not kept. Default DefaultCacheMaxEntries.
	MaxEntries int
}

// Defaults of CacheConfig.
const (
	DefaultCacheTTL        = time.Second
	DefaultCacheMaxEntries = 10000
)

func (c CacheConfig) withDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultCacheTTL
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	return c
}

// cacheEntry is a cached record and when its read began (monotonic).
type cacheEntry struct {
	s  *Session
	at time.Duration
}

// recordCache is the cache proper. Every invalidation and flush bumps
// gen under mu; put stores a record only if gen did not move since its
// read began (begin), so a record read before an invalidation is never
// stored after it.
type recordCache struct {
	ttl  time.Duration
	max  int
	c    *gocache.Cache
	good func() bool // the invalidation channel is known to work

	mu  sync.Mutex
	gen atomic.Uint64

	metrics *cacheMetrics
}

func newRecordCache(cfg CacheConfig, good func() bool) *recordCache {
	return &recordCache{
		ttl: cfg.TTL, max: cfg.MaxEntries,
		// No janitor goroutine: the store's heartbeat loop deletes the
		// expired entries.
		c:       gocache.New(cfg.TTL, 0),
		good:    good,
		metrics: newCacheMetrics(),
	}
}

// get returns the cached record of id if the channel is known to work
// and the entry is younger than the TTL: the cache's own, which the
// caller copies and must not change. It does not check that the session
// is live: the caller does, with the store's clock.
func (c *recordCache) get(id string) (*Session, bool) {
	if !c.good() {
		c.metrics.bypass.Inc()
		return nil, false
	}
	v, ok := c.c.Get(id)
	if !ok {
		c.metrics.miss.Inc()
		return nil, false
	}
	e := v.(cacheEntry)
	if mono()-e.at > c.ttl {
		c.metrics.miss.Inc()
		return nil, false
	}
	c.metrics.hit.Inc()
	return e.s, true
}

// readToken is what begin returns and put checks.
type readToken struct {
	gen uint64
	at  time.Duration
}

// begin is called before a record is read from Redis.
func (c *recordCache) begin() readToken { return readToken{gen: c.gen.Load(), at: mono()} }

// put stores a copy of s, read since tok, unless an invalidation or a
// flush happened meanwhile, the channel is not known to work, or the
// cache is full.
func (c *recordCache) put(tok readToken, s *Session) {
	if !c.good() {
		return
	}
	e := cacheEntry{s: s.Clone(), at: tok.at}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != tok.gen || c.c.ItemCount() >= c.max {
		return
	}
	c.c.Set(s.ID, e, gocache.DefaultExpiration)
}

// invalidate drops the entries of ids.
func (c *recordCache) invalidate(ids ...string) {
	c.mu.Lock()
	c.gen.Add(1)
	for _, id := range ids {
		c.c.Delete(id)
	}
	c.mu.Unlock()
}

// flush drops every entry.
func (c *recordCache) flush() {
	c.mu.Lock()
	c.gen.Add(1)
	c.c.Flush()
	c.mu.Unlock()
	c.metrics.flushes.Inc()
}

// monoStart is the origin of mono.
var monoStart = time.Now()

// mono is the time since monoStart on the monotonic clock: durations on
// it are immune to changes of the wall clock.
func mono() time.Duration { return time.Since(monoStart) }

// cacheMetrics count the cache's lookups.
type cacheMetrics struct {
	lookups           *prometheus.CounterVec // result
	hit, miss, bypass prometheus.Counter
	flushes           prometheus.Counter
	waits             prometheus.Histogram
}

func newCacheMetrics() *cacheMetrics {
	m := &cacheMetrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_session_cache_lookups_total",
			Help: "Reads of a session through the Redis store's local cache, by result: hit (no Redis round trip), miss (read from Redis), bypass (read from Redis because the invalidation channel is not known to work).",
		}, []string{"result"}),
		flushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bffgate_session_cache_flushes_total",
			Help: "Times the Redis store's local cache was emptied because its invalidation channel dropped, went silent or was subscribed again.",
		}),
		waits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bffgate_session_cache_invalidation_wait_seconds",
			Help:    "How long a write that ends or changes a session waited for the other replicas to drop their cached copy (their acknowledgements, or the silence bound).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	m.hit, m.miss, m.bypass = m.lookups.WithLabelValues("hit"), m.lookups.WithLabelValues("miss"), m.lookups.WithLabelValues("bypass")
	return m
}

// register registers the metrics on reg, with the gauges reading the
// store's state.
func (m *cacheMetrics) register(reg prometheus.Registerer, healthy func() bool, entries func() int) error {
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bffgate_session_cache_healthy",
		Help: "1 while the Redis store's invalidation channel is known to work and its local cache is used, 0 while reads bypass it.",
	}, func() float64 {
		if healthy() {
			return 1
		}
		return 0
	})
	n := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bffgate_session_cache_entries",
		Help: "Session records in the Redis store's local cache (expired ones until the next cleanup, at most a quarter of the TTL later).",
	}, func() float64 { return float64(entries()) })
	return registerAll(reg, m.lookups, m.flushes, m.waits, up, n)
}
