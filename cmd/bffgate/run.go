package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/upstream"
)

// run is the whole program: flags, config, wiring, serving, and shutdown
// in reverse order (stop accepting, drain, close the store).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.toml", "path to the configuration file")
	checkOnly := fs.Bool("check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, getenv)
	if err != nil {
		return err
	}
	if *checkOnly {
		fmt.Fprintf(stdout, "config %s is valid\n", *configPath)
		return nil
	}
	logger := newLogger(cfg.Server, stderr)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := newStore(cfg.Session)
	if err != nil {
		return err
	}
	mgr := session.NewManager(store, logger) // also reports the store's expiries
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close session store", "err", err)
		}
	}()
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
	notifier := upstream.NewNotifier(cfg.Notifier, &http.Client{Transport: upstream.NewTransport(cfg.Proxy)}, reg, logger)
	notifier.Start()
	fanout, err := upstream.NewFanout(signCfg.Issuer, signer, notifier, cfg.downstreams(), logger)
	if err != nil {
		return err
	}
	down := downstream{fanout}
	mgr.Observe(down)

	gw, err := bff.New(cfg.gateway(), bff.Deps{
		Sessions:   mgr,
		Cookies:    cookies,
		Transport:  upstream.NewTransport(cfg.Proxy),
		IdPClient:  &http.Client{Timeout: 10 * time.Second, Transport: upstream.NewTransport(upstream.TransportConfig{})},
		Metrics:    reg,
		Logger:     logger,
		Secret:     cfg.Session.Secret,
		Timeouts:   cfg.Session.Timeouts(),
		Issuer:     signer,
		Downstream: down,
	})
	if err != nil {
		return err
	}
	gw.Start(ctx)

	servers := []*http.Server{newServer(cfg.Server.Listen, gw.Handler(), logger)}
	if cfg.Server.AdminListen != "" {
		servers = append(servers, newServer(cfg.Server.AdminListen, gw.AdminHandler(), logger))
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
		logger.Info("listening", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", srv.Addr, err)
			}
		}()
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-errc:
		logger.Error("server failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(sctx); serr != nil {
			logger.Warn("shutdown", "addr", srv.Addr, "err", serr)
		}
	}
	gw.Close(sctx)
	if nerr := notifier.Shutdown(sctx); nerr != nil {
		logger.Error("downstream notifications", "err", nerr)
	}
	logger.Info("stopped")
	return err
}

// downstream adapts the fan-out to sessions: it observes every session
// end and gives bff the front-channel URLs.
type downstream struct{ f *upstream.Fanout }

func ended(s *session.Session) upstream.Ended {
	return upstream.Ended{App: s.App, Subject: s.Subject, SID: s.SID, Handle: session.Hash(s.ID), Used: s.UsedUpstream}
}

func (d downstream) SessionEnded(_ context.Context, _ session.Cause, s *session.Session) {
	d.f.SessionEnded(ended(s))
}

func (d downstream) FrontchannelURLs(s *session.Session) []string {
	return d.f.FrontchannelURLs(ended(s))
}

func newServer(addr string, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func newStore(cfg session.Config) (session.Store, error) {
	switch cfg.Store {
	case "memory":
		return session.NewMemoryStore(session.MemoryConfig{Timeouts: cfg.Timeouts()}), nil
	default:
		return nil, fmt.Errorf("session store %q is not available in this build", cfg.Store)
	}
}

func newLogger(cfg bff.ServerConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
