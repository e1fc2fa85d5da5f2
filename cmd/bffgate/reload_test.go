package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/internal/testop"
)

// TestRestartKeys: the keys a reload cannot apply are named (never their
// values) and keep their running values; the reloadable ones are taken.
func TestRestartKeys(t *testing.T) {
	load := func(c testConfig) *fileConfig {
		t.Helper()
		cfg, err := loadConfig(c.write(t), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	running := load(testConfig{listen: "127.0.0.1:8080", admin: "127.0.0.1:9090"})
	cfg := load(testConfig{
		listen: "127.0.0.1:8081", admin: "127.0.0.1:9090",
		server: `max_body_bytes = 1024
rate_limits = { login = { rate = 1, burst = 2 } }
log_level = "debug"
max_connections = 100
admin_max_connections = 8
max_event_streams_per_user = 2
body_read_timeout = "5s"
body_min_rate = 10
access_log = true`,
		session: `idle_timeout = "5m"`,
		secret:  strings.Repeat("t", 40),
		app: `  [[apps.apis]]
  path = "/api/"
  upstream = "http://127.0.0.1:4000"`,
	})
	got := restartKeys(running, cfg)
	want := []string{"server.listen", "server.public_url", "server.access_log", "session.secret", "session.idle_timeout"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("restart keys = %v, want %v", got, want)
	}
	for _, k := range got {
		if strings.Contains(k, "ttt") {
			t.Errorf("a key carries a value: %q", k)
		}
	}
	next := merged(running, cfg)
	if next.Server.Listen != "127.0.0.1:8080" || next.Session.Secret != running.Session.Secret ||
		next.Session.IdleTimeout != 30*time.Minute || next.Server.AccessLog {
		t.Errorf("merged kept %q %v %v, want the running listen, secret, idle_timeout and access_log",
			next.Server.Listen, next.Session.IdleTimeout, next.Server.AccessLog)
	}
	// The connection and stream caps, body deadlines and log level are
	// taken, max_event_streams's default derived again from the new
	// max_connections, as at the start.
	wantLimits := bff.ConnLimits{MaxConnections: 100, AdminMaxConnections: 8, BodyReadTimeout: 5 * time.Second, BodyMinRate: 10,
		MaxEventStreams: 50, MaxEventStreamsPerUser: 2}
	if next.Server.ConnLimits != wantLimits || next.Server.LogLevel != "debug" {
		t.Errorf("merged took %+v %q, want %+v debug", next.Server.ConnLimits, next.Server.LogLevel, wantLimits)
	}
	if err := next.validate(); err != nil {
		t.Errorf("merged config: %v", err)
	}
	if next.Server.MaxBodyBytes != 1024 || next.Server.RateLimits.Login.Burst != 2 || len(next.Apps[0].APIs) != 1 {
		t.Errorf("merged did not take the reloadable keys: %+v", next.Server)
	}
	if restartKeys(running, running) != nil {
		t.Error("an unchanged config has restart keys")
	}
}

// TestReloadTLSFiles: a reload naming other certificate files serves
// the new certificate at once (no file-watch delay), without a restart.
func TestReloadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	listen, admin := freePort(t), freePort(t)
	op := testop.New(t, testop.Config{})
	files := func(name string) (string, string) {
		return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	}
	server := func(cert, key string) string {
		return fmt.Sprintf("tls_cert = %q\ntls_key = %q\nadmin_token = %q", cert, key, reloadAdminToken)
	}
	c1, k1 := files("first")
	writeCert(t, c1, k1, "first", time.Now().Add(-time.Minute))
	path := gatewayConfig(t, op, "https", listen, admin, server(c1, k1))
	startRun(t, path, admin, io.Discard)

	c2, k2 := files("second")
	second := writeCert(t, c2, k2, "second", time.Now().Add(-time.Hour))
	body, err := os.ReadFile(gatewayConfig(t, op, "https", listen, admin, server(c2, k2)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep := adminReload(t, admin, reloadAdminToken)
	if code != http.StatusOK || len(rep.RestartRequired) != 0 {
		t.Fatalf("POST /admin/reload: %d %+v, want ok with nothing needing a restart", code, rep)
	}
	pool := x509.NewCertPool()
	pool.AddCert(second)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + listen + "/bff/user")
	if err != nil {
		t.Fatalf("https request trusting the reloaded certificate: %v", err)
	}
	resp.Body.Close()
}
