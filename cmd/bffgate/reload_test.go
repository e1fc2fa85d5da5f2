package main

import (
	"slices"
	"strings"
	"testing"
	"time"
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
