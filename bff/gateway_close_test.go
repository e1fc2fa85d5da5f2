package bff

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
)

// TestNewLeavesNoGoroutineOnError: when New fails after it has started
// workers (the refresh-token revoker's), it stops them; the caller has no
// Gateway to Close.
func TestNewLeavesNoGoroutineOnError(t *testing.T) {
	timeouts := session.Timeouts{Idle: time.Hour, Absolute: 8 * time.Hour}
	store := session.NewMemoryStore(session.MemoryConfig{Timeouts: timeouts})
	defer store.Close()
	mgr := session.NewManager(store, slog.New(slog.DiscardHandler))
	cookies, err := session.NewCookieCodec(session.CookieConfig{Secret: testSecret, MaxAge: timeouts.Absolute})
	if err != nil {
		t.Fatal(err)
	}
	app := AppConfig{
		Name: "demo", Issuer: "http://127.0.0.1:1", ClientID: "demo", Frontend: "http://127.0.0.1:1",
	}
	app.DecryptionKeyFile = "never-loaded.pem" // New refuses it: the key was not loaded
	app.Defaults()
	srv := ServerConfig{PublicURL: "http://127.0.0.1:8080"}
	srv.Defaults()
	before := goleak.IgnoreCurrent()
	_, err = New(Config{Server: srv, Apps: []AppConfig{app}}, Deps{
		Sessions: mgr, Cookies: cookies, Transport: http.DefaultTransport,
		Metrics: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Secret: testSecret, Timeouts: timeouts,
	})
	if err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("New: %v, want the key error", err)
	}
	if err := proctest.Eventually(10*time.Second, 0, func() error {
		runtime.GC() // go-cache's janitors stop when their cache is collected
		if err := goleak.Find(before); err != nil {
			return fmt.Errorf("goroutines left by a failed New:\n%v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
