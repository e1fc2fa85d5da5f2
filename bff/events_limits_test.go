package bff

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// streamMetric reads an event-stream metric (0 when absent).
func streamMetric(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := metricValue(t, g, name, labels)
	return v
}

// openConnected opens a stream and waits for its ": connected" line.
func (h *harness) openConnected(c *http.Client) *http.Response {
	h.t.Helper()
	resp, lines := h.openEvents(c)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("stream: %d, want 200", resp.StatusCode)
	}
	waitLine(h.t.(*testing.T), lines, ": connected", time.Second)
	return resp
}

// One account signed in many times must not open 8 streams per session
// without bound: the per-user cap counts across sessions.
func TestEventsPerUserCapAcrossSessions(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.MaxEventStreamsPerUser = 3 }})
	a, b := h.login("/"), h.login("/")
	h.openConnected(a)
	h.openConnected(a)
	h.openConnected(b)
	resp, _ := h.openEvents(b)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th stream of one user over 2 sessions: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another user is not affected.
	h.op.SetUser("bob", nil)
	h.openConnected(h.login("/"))
}

func TestEventsGlobalCap(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.MaxEventStreams = 2 }})
	h.openConnected(h.login("/"))
	h.op.SetUser("bob", nil)
	bob := h.login("/")
	h.openConnected(bob)
	resp, _ := h.openEvents(bob)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd stream over a global cap of 2: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The rest of the gateway still answers that user.
	if resp := h.get(bob, "/bff/user", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
		t.Errorf("/bff/user at the stream cap: %d, want 200", resp.StatusCode)
	}
}

func TestEventsDefaultGlobalCapFromFDLimit(t *testing.T) {
	c := ServerConfig{PublicURL: "http://gw.example"}
	c.Defaults()
	fds := fdSoftLimit()
	if fds <= 0 {
		t.Fatal("no RLIMIT_NOFILE on this platform")
	}
	if c.MaxEventStreams <= 0 || c.MaxEventStreams > fds/2 || c.MaxConnections >= fds || c.MaxEventStreams >= c.MaxConnections {
		t.Errorf("defaults under %d fds: max_connections %d, max_event_streams %d; want streams ≤ fds/2 and below the connection cap, below the fd limit",
			fds, c.MaxConnections, c.MaxEventStreams)
	}
}

func TestEventsMetrics(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.MaxEventStreams = 4; c.MaxEventStreamsPerUser = 3 }})
	reg := h.gw.registry
	a := h.login("/")
	first := h.openConnected(a)
	h.openConnected(a)
	h.openConnected(a)
	if got := streamMetric(t, reg, "bffgate_event_streams", nil); got != 3 {
		t.Errorf("open streams gauge = %v, want 3", got)
	}
	h.openEvents(a) // per user
	h.op.SetUser("bob", nil)
	bob := h.login("/")
	h.openConnected(bob)
	h.openEvents(bob) // global
	if got := streamMetric(t, reg, "bffgate_event_streams_rejected_total", map[string]string{"reason": "user"}); got != 1 {
		t.Errorf("rejections for reason user = %v, want 1", got)
	}
	if got := streamMetric(t, reg, "bffgate_event_streams_rejected_total", map[string]string{"reason": "global"}); got != 1 {
		t.Errorf("rejections for reason global = %v, want 1", got)
	}
	first.Body.Close()
	if err := proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if got := streamMetric(t, reg, "bffgate_event_streams", nil); got != 3 {
			return fmt.Errorf("open streams gauge = %v after a stream closed, want 3", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReloadStreamCaps: a reload that lowers the per-user and global
// stream caps refuses the next stream beyond them and ends none of the
// open ones (they still get their session's logout); raising them again
// lets streams in.
func TestReloadStreamCaps(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.MaxEventStreamsPerUser = 3 }})
	a := h.login("/")
	sid := h.op.LastSID()
	_, first := h.openEvents(a)
	waitLine(t, first, ": connected", 5*time.Second)
	_, second := h.openEvents(a)
	waitLine(t, second, ": connected", 5*time.Second)

	cfg := h.config()
	cfg.Server.MaxEventStreamsPerUser = 1
	h.reload(cfg)
	if resp, _ := h.openEvents(a); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("3rd stream after the per-user cap went from 3 to 1: %d, want 429", resp.StatusCode)
	}
	if n := h.gw.events.count(); n != 2 {
		t.Fatalf("open streams after lowering the cap: %d, want the 2 that were open", n)
	}
	h.op.SetUser("bob", nil)
	bob := h.login("/")
	cfg.Server.MaxEventStreams = 2
	h.reload(cfg)
	if resp, _ := h.openEvents(bob); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a stream over a global cap lowered to 2: %d, want 503", resp.StatusCode)
	}
	cfg.Server.MaxEventStreams, cfg.Server.MaxEventStreamsPerUser = 8, 3
	h.reload(cfg)
	h.openConnected(bob)

	if resp := h.backchannel(h.logoutToken(func(c map[string]any) { c["sub"], c["sid"] = "alice", sid }, testop.SignOpts{})); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel = %d", resp.StatusCode)
	}
	for _, lines := range []<-chan string{first, second} {
		waitLine(t, lines, "event: logout", 5*time.Second)
	}
}
