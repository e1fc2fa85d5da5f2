package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/upstream"
)

// configDefault is -config's default: $BFFGATE_CONFIG, so that the image's
// exec-form ENTRYPOINT and HEALTHCHECK (no shell) read the same file, else
// config.toml in the working directory.
func configDefault(getenv func(string) string) string {
	if p := getenv("BFFGATE_CONFIG"); p != "" {
		return p
	}
	return "config.toml"
}

// newRegistry makes the registry every part of the gateway registers its
// metrics in (a variable so that a test can inspect a running gateway's).
var newRegistry = prometheus.NewRegistry

// run is the whole program: flags, config, wiring, serving, and shutdown
// in reverse order (shutdown.go). Whatever way it returns (a signal, a
// listener that cannot start, bad TLS files, a config error), it leaves
// no goroutine running.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, getenv, stdout, stderr)
	if err != nil {
		if errors.Is(err, errExit) {
			return nil
		}
		return err
	}
	cfg, err := loadConfig(opts.configPath, getenv)
	if err != nil {
		return err
	}
	switch {
	case opts.online && !opts.checkOnly:
		return fmt.Errorf("-online needs -check-config")
	case opts.checkOnly:
		if opts.online {
			if err := checkOnline(ctx, cfg, stdout); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "config %s is valid\n", opts.configPath)
		return nil
	case opts.healthcheck:
		return checkHealth(ctx, cfg.Server.AdminListen)
	}
	logw := newLogWriter(stderr)
	defer logw.Close() // last: every other deferred step may still log
	live := newLiveLimits(cfg.Server)
	logger := newLogger(cfg.Server, &live.level, logw)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	traces, err := newTracing(ctx, getenv, logger)
	if err != nil {
		return err
	}
	var tracesOnce sync.Once
	stopTraces := func(ctx context.Context) {
		tracesOnce.Do(func() {
			if err := traces.shutdown(ctx); err != nil {
				logger.Warn("shutdown: spans not exported", "err", err)
			}
		})
	}
	// On the ways out before shutdown; a no-op after it, which flushes
	// the spans within its budget.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stopTraces(sctx)
	}()

	reg := newRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	shared, err := newShared(cfg.Session, reg, traces.tp(), logger)
	if err != nil {
		return err
	}
	defer shared.close(logger) // after the store and the notifier, below
	store, err := newStore(cfg.Session, shared, reg, logger)
	if err != nil {
		return err
	}
	mgr := session.NewManager(store, logger) // also reports the store's expiries and broadcasts ends
	closeStore := sync.OnceFunc(func() {
		if err := store.Close(); err != nil {
			logger.Error("close session store", "err", err)
		}
	})
	defer closeStore() // on the ways out before shutdown; a no-op after it
	cookies, err := session.NewCookieCodec(session.CookieConfig{
		Secret: cfg.Session.Secret,
		Secure: cfg.Server.PublicURL[:6] == "https:",
		MaxAge: cfg.Session.AbsoluteTimeout,
	})
	if err != nil {
		return fmt.Errorf("session cookies: %w", err)
	}

	// The gateway as an issuer for its downstream apps.
	signCfg := cfg.Signing
	signCfg.Issuer = strings.TrimSuffix(cfg.Server.PublicURL, "/")
	signer, err := upstream.NewSigner(signCfg, logger)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	notifyCfg := cfg.Notifier
	notifyCfg.Sign = signer.SignNotification // at every attempt: fresh iat and exp, same jti
	notifyCfg.TracerProvider = traces.tp()
	if shared.rdb != nil {
		notifyCfg.Queue = upstream.NewRedisQueue(shared.rdb, upstream.RedisQueueConfig{ClaimIdle: cfg.Notifier.ClaimIdle, Logger: logger})
	}
	// The clients' keep-alive connections are closed on the way out, so
	// that no connection goroutine outlives run.
	proxyTransport, notifyTransport := upstream.NewProxyTransport(cfg.Proxy), upstream.NewTransport(cfg.Proxy)
	idpTransport := upstream.NewTransport(upstream.TransportConfig{})
	defer func() {
		proxyTransport.Close()
		for _, t := range []*http.Transport{notifyTransport, idpTransport} {
			t.CloseIdleConnections()
		}
	}()
	notifier := upstream.NewNotifier(notifyCfg, &http.Client{Transport: notifyTransport}, reg, logger)
	newFanout := func(c *fileConfig) (*upstream.Fanout, error) {
		return upstream.NewFanout(signCfg.Issuer, notifier, c.downstreams(), logger)
	}
	fanout, err := newFanout(cfg)
	if err != nil {
		return err
	}
	down := downstream{new(atomic.Pointer[upstream.Fanout])}
	down.f.Store(fanout)
	mgr.Observe(down)

	deps := bff.Deps{
		Sessions:   mgr,
		Cookies:    cookies,
		Transport:  proxyTransport,
		IdPClient:  &http.Client{Timeout: 10 * time.Second, Transport: idpTransport},
		Metrics:    reg,
		Logger:     logger,
		Secret:     cfg.Session.Secret,
		Timeouts:   cfg.Session.Timeouts(),
		Issuer:     signer,
		Downstream: down,
		Replay:     shared.replay(),

		TracerProvider: traces.tp(),
	}
	if deps.ClientTokens, err = shared.clientTokens(cfg.Session.Secret); err != nil {
		return err
	}
	gw, err := bff.New(cfg.gateway(), deps)
	if err != nil {
		return err
	}
	var certs *certReloader
	if cfg.Server.TLSCert != "" {
		if certs, err = newCertReloader(cfg.Server.TLSCert, cfg.Server.TLSKey); err != nil {
			_ = gw.Close(ctx)
			return err
		}
	}
	reloads := newReloader(&reloader{
		path: opts.configPath, getenv: getenv, gw: gw, down: down, fanout: newFanout,
		certs: certs, live: live, logger: logger, running: cfg,
	}, reg)
	gw.SetReloader(reloads)
	// From here on every way out goes through shutdown: nothing started
	// below is left running.
	notifier.Start()
	gw.Start(ctx)
	stopReloads := watchReloads(ctx, reloads)
	servers, errc, err := serve(cfg.Server, live, certs, gw, reg, logger)
	if err == nil {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
		case err = <-errc:
			logger.Error("server failed", "err", err)
		}
	}
	stopReloads()
	shutdown(cfg.Server.ShutdownTimeout, shutdownSteps{
		servers: servers, notifier: notifier, gateway: gw, closeStore: closeStore, flushTraces: stopTraces,
	}, logger)
	logger.Info("stopped")
	return err
}

// downstream adapts the fan-out to sessions: it observes every session
// end and gives bff the front-channel URLs. A reload swaps the fan-out.
type downstream struct {
	f *atomic.Pointer[upstream.Fanout]
}

func ended(s *session.Session) upstream.Ended {
	return upstream.Ended{App: s.App, Subject: s.Subject, SID: s.SID, Handle: session.Hash(s.ID), Used: s.UsedUpstream}
}

func (d downstream) SessionEnded(ctx context.Context, _ session.Cause, s *session.Session) {
	d.f.Load().SessionEnded(ctx, ended(s))
}

func (d downstream) FrontchannelURLs(s *session.Session) []string {
	return d.f.Load().FrontchannelURLs(ended(s))
}

// sharedState is what replicas share: the Redis client of store
// "redis", nil with the memory store.
type sharedState struct {
	rdb redis.UniversalClient
}

func newShared(cfg session.Config, reg prometheus.Registerer, tp trace.TracerProvider, logger *slog.Logger) (sharedState, error) {
	if cfg.Store != "redis" {
		return sharedState{}, nil
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
	rdb, err := session.NewRedisClient(cfg, reg)
	if err != nil {
		return sharedState{}, fmt.Errorf("session store: %w", err)
	}
	if err := traceRedis(rdb, tp); err != nil {
		_ = rdb.Close()
		return sharedState{}, fmt.Errorf("session store: %w", err)
	}
	// Not fatal: the gateway starts, /readyz says false and requests get
	// 503 until Redis answers.
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		logger.Warn("redis is not reachable yet", "err", err)
	}
	return sharedState{rdb: rdb}, nil
}

// redisLogOnce sets go-redis's logger, a global, once per process.
var redisLogOnce sync.Once

// redisLogger sends go-redis's own log lines (connection failures) to the
// gateway's log, as warnings.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// replay returns the shared jti replay cache, or nil for bff's in-memory
// one.
func (s sharedState) replay() logout.ReplayCache {
	if s.rdb == nil {
		return nil
	}
	return session.NewRedisReplayCache(s.rdb)
}

// clientTokens returns the store of the client tokens the replicas
// share, or nil for per-process ones.
func (s sharedState) clientTokens(secret string) (proxy.ClientTokenStore, error) {
	if s.rdb == nil {
		return nil, nil
	}
	st, err := session.NewRedisClientTokens(s.rdb, secret)
	if err != nil {
		return nil, fmt.Errorf("client token store: %w", err)
	}
	return st, nil
}

func (s sharedState) close(logger *slog.Logger) {
	if s.rdb == nil {
		return
	}
	if err := s.rdb.Close(); err != nil {
		logger.Error("close redis client", "err", err)
	}
}

func newStore(cfg session.Config, shared sharedState, reg prometheus.Registerer, logger *slog.Logger) (session.Store, error) {
	switch cfg.Store {
	case "memory":
		return session.NewMemoryStore(session.MemoryConfig{Timeouts: cfg.Timeouts()}), nil
	case "redis":
		st, err := session.NewRedisStore(shared.rdb, session.RedisConfig{Timeouts: cfg.Timeouts(), Secret: cfg.Secret, Logger: logger,
			Cache: cfg.CacheConfig(), Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("session store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("session store %q is not available in this build", cfg.Store)
	}
}

// newLogger logs at level, which a reload changes (server.log_level).
func newLogger(cfg bff.ServerConfig, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(bff.LogHandler(h)) // request_id on every line logged with a request's context
}
