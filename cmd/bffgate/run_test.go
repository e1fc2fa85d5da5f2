package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// startRun runs the gateway in-process with the config at path until the
// test ends, and waits until its admin listener says it is ready.
func startRun(t *testing.T, path, admin string, stderr io.Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bffgate", "-config", path}, env(nil), io.Discard, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway %s: run returned %v", path, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("gateway %s did not stop", path)
		}
	})
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)
}

func TestRunServesAndShutsDown(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	// The secrets come from the environment.
	path := testConfig{op: op, listen: listen, admin: admin, secret: "${SECRET}", clientSecret: "${CLIENT_SECRET}"}.write(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"bffgate", "-config", path}, env(map[string]string{
			"SECRET":        strings.Repeat("s", 40),
			"CLIENT_SECRET": op.ClientSecret(),
		}), &bytes.Buffer{}, &stderr)
	}()
	waitStatus(t, "http://"+admin+"/healthz", http.StatusOK)
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)
	// The frontend upstream is down: 502 without its address.
	resp, err := http.Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	b := new(bytes.Buffer)
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(b.String(), "127.0.0.1:1") {
		t.Errorf("dead frontend: %d %q, want 502 without the upstream address", resp.StatusCode, b.String())
	}

	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(b.String(), `bffgate_http_requests_total{app="demo",code="502",route="frontend"} 1`) {
		t.Errorf("/metrics lacks the request count of the frontend call:\n%s", b.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context was canceled")
	}
	if strings.Contains(stderr.String(), op.ClientSecret()) {
		t.Error("the log contains the client secret")
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	if err := proctest.Eventually(10*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		return fmt.Errorf("%s never answered %d (last: %v)", url, want, err)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsAreAllReported(t *testing.T) {
	path := writeConfig(t, `
[server]
public_url = "not a url"
[session]
secret = "${MISSING}"
[[apps]]
name = "demo"
issuer = "ftp://idp"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
colour = "blue"
`)
	wantProblems(t, path,
		"server.public_url: must be an absolute http(s) origin",
		"session.secret: environment variable MISSING is not set",
		"apps[0].issuer: must be an absolute http(s) URL",
		"apps[0].colour: unknown key",
	)
}

func TestCheckConfigOfTheRepo(t *testing.T) {
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"bffgate", "-config", "../../config.toml", "-check-config"}, env(map[string]string{
		"BFFGATE_SESSION_SECRET": strings.Repeat("x", 32),
		"DEMO_CLIENT_SECRET":     "demo-secret",
		"BFFGATE_ADMIN_TOKEN":    "admin-token-0123456789",
	}), &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("config.toml is invalid: %v", err)
	}
	if !strings.Contains(stdout.String(), "is valid") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func TestConfigSyntaxError(t *testing.T) {
	path := writeConfig(t, "[server\nlisten = 1\n")
	_, err := runCheckConfig(t, path, nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want a syntax error with its line", err)
	}
}

func TestReplicasNeedASharedSigningKey(t *testing.T) {
	path := testConfig{
		session: `store = "redis"
redis_url = "redis://127.0.0.1:6379/0"`,
		app: `  [[apps.downstream]]
  backchannel_logout_uri = "http://127.0.0.1:4000/logout"
  notify = "always"`,
	}.write(t)
	_, err := runCheckConfig(t, path, nil)
	if err == nil || !strings.Contains(err.Error(), "signing.key_file: is required") {
		t.Errorf("err = %v, want signing.key_file required", err)
	}
}

func TestHeaderSizeCap(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	path := gatewayConfig(t, op, "http", listen, admin, "max_header_bytes = 8192")
	startRun(t, path, admin, io.Discard)
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/bff/user", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: status %d, want 431", resp.StatusCode)
	}
}
