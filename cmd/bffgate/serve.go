package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/bff"
)

// serve starts the gateway listener (HTTPS with certs, from tls_cert and
// tls_key) and the admin listener. Errors of a running server arrive on the
// channel.
func serve(cfg bff.ServerConfig, live *liveLimits, certs *certReloader, gw *bff.Gateway, reg prometheus.Registerer, logger *slog.Logger) ([]*http.Server, <-chan error, error) {
	m := newConnMetrics(reg)
	main := newServer(cfg.Listen, limitBodies(gw.Handler(), &live.body, m.bodyTimeouts), cfg.MaxHeaderBytes, logger)
	// An open event stream would hold Shutdown for its whole timeout:
	// streams are told to reconnect and ended as soon as it starts.
	main.RegisterOnShutdown(gw.CloseStreams)
	if certs != nil {
		main.TLSConfig = tlsConfig(certs)
	}
	servers := []*http.Server{main}
	// Each listener has its own connection cap: the admin listener still
	// answers health checks and metrics when the gateway's is full. A
	// reload changes them (live).
	caps, names := []*connCap{live.conns}, []string{"gateway"}
	if cfg.AdminListen != "" {
		admin := newServer(cfg.AdminListen, limitBodies(gw.AdminHandler(), &live.body, m.bodyTimeouts), cfg.MaxHeaderBytes, logger)
		servers = append(servers, admin)
		caps, names = append(caps, live.adminConns), append(names, "admin")
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, started := range servers[:i] {
				started.Close()
			}
			return nil, nil, fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
		logger.Info("listening", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil, "max_connections", caps[i].max.Load())
		ln = limitListener(ln, caps[i], m.open.WithLabelValues(names[i]))
		go func() {
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", srv.Addr, err)
			}
		}()
	}
	return servers, errc, nil
}

func newServer(addr string, h http.Handler, maxHeaderBytes int, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// checkHealth is -healthcheck: the distroless image has no shell or curl,
// so the binary probes its own admin listener.
func checkHealth(ctx context.Context, adminListen string) error {
	if adminListen == "" {
		return errors.New("healthcheck: server.admin_listen is not set")
	}
	host, port, err := net.SplitHostPort(adminListen)
	if err != nil {
		return fmt.Errorf("healthcheck: admin_listen: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %d", resp.StatusCode)
	}
	return nil
}
