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
log_level = "debug"`,
		session: `idle_timeout = "5m"`,
		secret:  strings.Repeat("t", 40),
		app: `  [[apps.apis]]
  path = "/api/"
  upstream = "http://127.0.0.1:4000"`,
	})
	got := restartKeys(running, cfg)
	want := []string{"server.listen", "server.public_url", "server.log_level", "session.secret", "session.idle_timeout"}
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
		next.Session.IdleTimeout != 30*time.Minute || next.Server.LogLevel != running.Server.LogLevel {
		t.Errorf("merged kept %q %v %q, want the running listen, secret, idle_timeout and log_level",
			next.Server.Listen, next.Session.IdleTimeout, next.Server.LogLevel)
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
