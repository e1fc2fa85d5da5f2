package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// runningGateway is a gateway run in-process whose shutdown the test
// starts itself.
type runningGateway struct {
	public string
	cancel context.CancelFunc
	done   chan error
}

// waitStopped waits up to d for run to return, and fails the test with
// late if it does not, or with run's error.
func (g *runningGateway) waitStopped(t *testing.T, d time.Duration, late string) {
	t.Helper()
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(d):
		t.Fatal(late)
	}
}

// runGateway starts run with the config at path and waits until it is
// ready. The test must call stop.
func runGateway(t *testing.T, path, listen, admin string) *runningGateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &runningGateway{public: "http://" + listen, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- run(ctx, []string{"bffgate", "-config", path}, env(nil), io.Discard, io.Discard) }()
	t.Cleanup(cancel)
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)
	return g
}

// signInConfig writes a one-app config that users can sign in to, with
// extra lines in [server], at the top level and in [[apps]].
func signInConfig(t *testing.T, op *testop.OP, listen, admin, server, top, app string) string {
	t.Helper()
	return testConfig{op: op, listen: listen, admin: admin, server: server, app: app, tables: top}.write(t)
}

// signIn signs a new browser in (the OP signs alice in at once).
func signIn(t *testing.T, public string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get(public + "/bff/login")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	return c
}

// openStream opens /bff/events and returns its lines; the channel closes
// when the gateway ends the stream.
func openStream(t *testing.T, c *http.Client, public string) <-chan string {
	t.Helper()
	resp, err := c.Get(public + "/bff/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	lines := proctest.Lines(resp.Body, 100)
	waitLine(t, lines, ": connected", 10*time.Second)
	return lines
}

// TestShutdownTellsEventStreamsToReconnect: one open event stream must
// not hold the shutdown for the whole shutdown_timeout (30s here). The
// stream is told to reconnect (a retry hint and a "reconnect" event, never
// "logout") and closed as soon as shutdown starts.
func TestShutdownTellsEventStreamsToReconnect(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	op.SetRedirectURL("http://" + listen + "/bff/callback")
	g := runGateway(t, signInConfig(t, op, listen, admin, `shutdown_timeout = "30s"`, "", ""), listen, admin)
	lines := openStream(t, signIn(t, g.public), g.public)

	g.cancel() // as SIGTERM does
	got, closed := readUntilClosed(lines, 20*time.Second)
	if !closed {
		t.Fatalf("the event stream is still open 20s after shutdown began (shutdown_timeout 30s); it got:\n%s", strings.Join(got, "\n"))
	}
	g.waitStopped(t, 15*time.Second, "run still shutting down 15s after the stream closed: the stream held the HTTP drain")
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "event: reconnect") || !strings.Contains(all, "retry: ") {
		t.Errorf("stream at shutdown:\n%s\nwant a retry hint and a reconnect event", all)
	}
	if strings.Contains(all, "event: logout") {
		t.Errorf("stream at shutdown:\n%s\nsays logout: the user would look signed out", all)
	}
}

// TestShutdownDeliversQueuedNotifications: with an event stream open, a
// logout's downstream notifications (one in flight, one queued behind it
// with concurrency 1) are still delivered during shutdown. The receiver
// holds the first one until the stream is closed, that is until shutdown
// has begun.
func TestShutdownDeliversQueuedNotifications(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	op.SetRedirectURL(public + "/bff/callback")

	release := make(chan struct{})
	var releaseOnce sync.Once
	var delivered, seen atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		select {
		case <-release:
			delivered.Add(1)
		case <-r.Context().Done(): // the notifier gave up
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer recv.Close()
	defer releaseOnce.Do(func() { close(release) })

	path := signInConfig(t, op, listen, admin, `shutdown_timeout = "5s"`, fmt.Sprintf(`
[notifier]
concurrency = 1
timeout = "60s"`), fmt.Sprintf(`
  [[apps.downstream]]
  backchannel_logout_uri = "%s/a"
  audience = "a"
  notify = "always"
  [[apps.downstream]]
  backchannel_logout_uri = "%s/b"
  audience = "b"
  notify = "always"`, recv.URL, recv.URL))
	g := runGateway(t, path, listen, admin)

	watcher := signIn(t, public)
	lines := openStream(t, watcher, public)
	signIn(t, public)
	leaving := op.LastSID()
	if code, body, err := backchannel(&replica{public: public}, logoutToken(op, leaving)); err != nil || code != http.StatusOK {
		t.Fatalf("back-channel logout: %d %q %v", code, body, err)
	}
	if !poll(10*time.Second, func() bool { return seen.Load() > 0 }) { // the first notification is in flight
		t.Fatal("the receiver got no notification")
	}

	g.cancel()
	go func() {
		readUntilClosed(lines, time.Minute)
		releaseOnce.Do(func() { close(release) }) // the stream is closed: shutdown has begun
	}()
	g.waitStopped(t, 60*time.Second, "run did not stop")
	if n := delivered.Load(); n != 2 {
		t.Errorf("%d of 2 downstream notifications delivered during shutdown", n)
	}
}

// readUntilClosed collects lines until the channel closes (closed is
// true) or within passes.
func readUntilClosed(lines <-chan string, within time.Duration) (got []string, closed bool) {
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got, true
			}
			got = append(got, l)
		case <-timeout:
			return got, false
		}
	}
}
