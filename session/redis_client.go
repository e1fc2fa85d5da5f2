package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Timeouts of the Redis client: short, so that an outage turns into
// quick 503s rather than hanging requests. go-redis reconnects by itself.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 2 * time.Second
)

// NewRedisClient returns a go-redis universal client for cfg's [session]
// Redis keys: a single server (redis_url, or one of redis_addrs), a
// Sentinel set (redis_addrs and redis_master_name: a failover client that
// follows the master the Sentinels elect) or a Cluster (several
// redis_addrs, or redis_cluster). It registers the client's metrics on
// reg (nil: none): the latency of each command, errors, and whether the
// last ping succeeded (see redisMetrics). It does not connect; the first
// command does.
func NewRedisClient(cfg Config, reg prometheus.Registerer) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:            cfg.RedisAddrs,
		MasterName:       cfg.RedisMasterName,
		IsClusterMode:    cfg.isCluster(),
		Username:         cfg.RedisUsername,
		Password:         cfg.RedisPassword,
		SentinelPassword: cfg.RedisSentinelPassword,
		DB:               cfg.RedisDB,
	}
	if cfg.RedisTLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.RedisURL != "" {
		o, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		opts = &redis.UniversalOptions{
			Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password,
			DB: o.DB, TLSConfig: o.TLSConfig,
		}
	}
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	opts.ClientName = "bffgate"
	opts.DialTimeout = redisDialTimeout
	opts.DialerRetries = 1
	opts.ReadTimeout = redisIOTimeout
	opts.WriteTimeout = redisIOTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	rdb := redis.NewUniversalClient(opts)
	h := newRedisMetrics()
	if reg != nil {
		if err := registerAll(reg, h.latency, h.errors, h.up, h.lastPing); err != nil {
			rdb.Close()
			return nil, err
		}
	}
	rdb.AddHook(h)
	return rdb, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("redis metrics: %w", err)
		}
	}
	return nil
}

// redisMetrics is a go-redis hook timing every command, counting the
// failures, and recording the outcome of each PING: the start-up check
// and every /readyz probe ping the store, so up is as fresh as the
// readiness probes.
type redisMetrics struct {
	latency  *prometheus.HistogramVec // command
	errors   *prometheus.CounterVec   // command
	up       prometheus.Gauge
	lastPing prometheus.Gauge
}

func newRedisMetrics() *redisMetrics {
	return &redisMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bffgate_redis_command_duration_seconds",
			Help:    "Latency of Redis commands (a pipeline counts once, as \"pipeline\"), by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_redis_errors_total",
			Help: "Redis commands that failed (network errors, timeouts, server errors; a missing key is not an error), by command.",
		}, []string{"command"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bffgate_redis_up",
			Help: "1 if the last PING of Redis (start-up, readiness probes) succeeded, 0 if it failed.",
		}),
		lastPing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bffgate_redis_last_ping_success_timestamp_seconds",
			Help: "Unix time of the last successful PING of Redis; 0 if none yet.",
		}),
	}
}

// pinged records the outcome of a PING.
func (m *redisMetrics) pinged(err error, at time.Time) {
	if err != nil {
		m.up.Set(0)
		return
	}
	m.up.Set(1)
	m.lastPing.Set(float64(at.UnixNano()) / 1e9)
}

// DialHook implements redis.Hook.
func (m *redisMetrics) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			m.errors.WithLabelValues("dial").Inc()
		}
		return c, err
	}
}

// ProcessHook implements redis.Hook.
func (m *redisMetrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		name := commandName(cmd)
		m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if name == "ping" || isPing(ctx) {
			m.pinged(err, start)
		}
		if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			m.errors.WithLabelValues(name).Inc()
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (m *redisMetrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		m.latency.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		if err != nil && !errors.Is(err, redis.Nil) {
			m.errors.WithLabelValues("pipeline").Inc()
		}
		return err
	}
}

// pingKey marks a context whose command stands for a PING (see
// RedisStore.Ping).
type pingKey struct{}

func asPing(ctx context.Context) context.Context { return context.WithValue(ctx, pingKey{}, true) }

func isPing(ctx context.Context) bool { return ctx.Value(pingKey{}) != nil }

// commandName is the metrics label of a command: its name, lower case,
// from a fixed set (never a key or an argument).
func commandName(cmd redis.Cmder) string {
	return strings.ToLower(cmd.Name())
}

// isNoScript reports the NOSCRIPT reply that makes go-redis's Script.Run
// fall back from EVALSHA to EVAL: expected once per script and server.
func isNoScript(err error) bool {
	return strings.HasPrefix(err.Error(), "NOSCRIPT")
}
