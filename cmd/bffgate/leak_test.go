package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// noGoroutinesLeft fails t if a goroutine started after before is still
// running once run has returned. It polls until a deadline: goroutines
// that are ending (a closed connection's reader) get time to go, and
// garbage collection runs between polls because go-cache's janitor
// stops when its cache is collected.
func noGoroutinesLeft(t *testing.T, before goleak.Option) {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	opts := []goleak.Option{
		before,
		// os/signal's loop starts with the first signal.Notify of the
		// process and never ends; it is not the gateway's.
		goleak.IgnoreAnyFunction("os/signal.loop"),
	}
	if err := proctest.Eventually(10*time.Second, 0, func() error {
		runtime.GC()
		if err := goleak.Find(opts...); err != nil {
			return fmt.Errorf("goroutines left after run returned:\n%v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// runToEnd runs the gateway with the config at path; ready, if not empty,
// is the admin address to wait on before stopping it, with a real SIGTERM
// when sigterm is set, else by cancelling its context. It returns run's
// error.
func runToEnd(t *testing.T, path, ready string, sigterm bool, vars map[string]string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bffgate", "-config", path}, env(vars), io.Discard, io.Discard) }()
	if ready != "" {
		waitStatus(t, "http://"+ready+"/healthz", http.StatusOK) // serving: run has its signal handler
		if sigterm {
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
		} else {
			cancel()
		}
	}
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
		return nil
	}
}

// TestRunLeavesNoGoroutine checks every way out of run: a normal
// shutdown (SIGTERM, or the caller's context; with the memory store and
// with a Redis that is down), a
// listener that cannot start (either one), a broken config, a broken
// Redis URL and unreadable TLS files.
func TestRunLeavesNoGoroutine(t *testing.T) {
	op := testop.New(t, testop.Config{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	otlp := httptest.NewServer(&otlpReceiver{})
	defer otlp.Close()
	traced := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.URL}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)

	for _, tc := range []struct {
		name    string
		config  func(listen, admin string) string
		wantErr string // "" when it runs and stops cleanly
		ready   bool
		sigterm bool
		env     map[string]string // tracing on, with an OTLP receiver
	}{
		{name: "sigterm", ready: true, sigterm: true, config: func(listen, admin string) string {
			return gatewayConfig(t, op, "http", listen, admin, "")
		}},
		{name: "cancelled", ready: true, config: func(listen, admin string) string {
			return gatewayConfig(t, op, "http", listen, admin, "")
		}},
		{name: "traced", ready: true, sigterm: true, env: traced, config: func(listen, admin string) string {
			return gatewayConfig(t, op, "http", listen, admin, "")
		}},
		{name: "traced, listener taken", wantErr: "listen", env: traced, config: func(_, admin string) string {
			return gatewayConfig(t, op, "http", taken.Addr().String(), admin, "")
		}},
		{name: "listener taken", wantErr: "listen", config: func(_, admin string) string {
			return gatewayConfig(t, op, "http", taken.Addr().String(), admin, "")
		}},
		{name: "admin listener taken", wantErr: "listen", config: func(listen, _ string) string {
			return gatewayConfig(t, op, "http", listen, taken.Addr().String(), "")
		}},
		{name: "tls files", wantErr: "tls", config: func(listen, admin string) string {
			return gatewayConfig(t, op, "https", listen, admin, "tls_cert = "+quote(garbage)+"\ntls_key = "+quote(garbage))
		}},
		{name: "bad config", wantErr: "log_level", config: func(listen, admin string) string {
			return gatewayConfig(t, op, "http", listen, admin, `log_level = "loud"`)
		}},
		{name: "redis down", ready: true, config: func(listen, admin string) string {
			return redisConfig(t, op, listen, admin, "redis://"+freePort(t)+"/0")
		}},
		{name: "redis url", wantErr: "redis", config: func(listen, admin string) string {
			return redisConfig(t, op, listen, admin, "redis://127.0.0.1:6379/notadb")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, admin := freePort(t), freePort(t)
			path := tc.config(listen, admin)
			before := goleak.IgnoreCurrent()
			ready := ""
			if tc.ready {
				ready = admin
			}
			err := runToEnd(t, path, ready, tc.sigterm, tc.env)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("run: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.wantErr)):
				t.Fatalf("run: %v, want an error about %s", err, tc.wantErr)
			}
			noGoroutinesLeft(t, before)
		})
	}
}

func quote(s string) string { return `"` + s + `"` }

// redisConfig is gatewayConfig with the Redis store at url.
func redisConfig(t *testing.T, op *testop.OP, listen, admin, url string) string {
	t.Helper()
	cfg, err := os.ReadFile(gatewayConfig(t, op, "http", listen, admin, ""))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(cfg), "[session]\n", "[session]\nstore = \"redis\"\nredis_url = "+quote(url)+"\n", 1)
	return writeConfig(t, body)
}
