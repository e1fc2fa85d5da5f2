package bff

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// openEvents opens /bff/events and returns a channel of its lines.
func (h *harness) openEvents(c *http.Client) (*http.Response, <-chan string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/bff/events", nil)
	stream := *c
	stream.Timeout = 0
	resp, err := stream.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp, proctest.Lines(resp.Body, 100)
}

func waitLine(t *testing.T, lines <-chan string, prefix string, within time.Duration) (string, time.Time) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream closed before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l, time.Now()
			}
		case <-deadline:
			t.Fatalf("no %q line within %v", prefix, within)
		}
	}
}

// TestEventsLogoutPushed: a back-channel logout pushes "logout" with its
// cause to the session's open stream, which then ends. The cause shows
// the push: the stream's own backstop (a store check at the 25 s
// heartbeat) only knows the cause "unknown".
func TestEventsLogoutPushed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	resp, lines := h.openEvents(c)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitLine(t, lines, ": connected", 5*time.Second)

	lresp := h.backchannel(h.logoutToken(nil, testop.SignOpts{}))
	if lresp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel = %d", lresp.StatusCode)
	}
	waitLine(t, lines, "event: logout", 5*time.Second)
	data, _ := waitLine(t, lines, "data:", 5*time.Second)
	if !strings.Contains(data, `"cause":"backchannel"`) {
		t.Errorf("data = %q, want the cause backchannel", data)
	}
	waitClosed(t, lines, 5*time.Second)
}

// waitClosed fails t unless the stream behind lines ends within d.
func waitClosed(t *testing.T, lines <-chan string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	var extra []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return
			}
			extra = append(extra, l)
		case <-deadline:
			t.Fatalf("the event stream was still open %v after the logout event; lines since: %q", d, extra)
		}
	}
}

func TestEventsNeedSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp := h.get(h.browser(), "/bff/events")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.StatusCode)
	}
}

func TestEventsPerSessionCap(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	for range maxStreamsPerSession {
		_, lines := h.openEvents(c)
		waitLine(t, lines, ": connected", 5*time.Second)
	}
	resp, _ := h.openEvents(c)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("stream over the cap: %d, want 429", resp.StatusCode)
	}
}

func TestEventsOnRPLogoutToo(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	_, lines := h.openEvents(c)
	waitLine(t, lines, ": connected", 5*time.Second)
	h.get(c, h.logoutURL(c))
	waitLine(t, lines, "event: logout", 5*time.Second)
	data, _ := waitLine(t, lines, "data:", 5*time.Second)
	if !strings.Contains(data, "rp_initiated") {
		t.Errorf("data = %q, want cause rp_initiated", data)
	}
}

func TestCheckSessionPage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp := h.get(h.browser(), "/bff/check-session")
	b := body(t, resp)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || !strings.Contains(csp, "frame-ancestors 'self'") || !strings.Contains(csp, "script-src 'nonce-") {
		t.Errorf("check-session: %d CSP %q, want 200 with a nonce and frame-ancestors 'self'", resp.StatusCode, csp)
	}
	if !strings.Contains(b, `data-origin="`+h.srv.URL+`"`) || !strings.Contains(b, `data-client-id="`+h.op.ClientID()+`"`) {
		t.Errorf("page lacks the app's origin or client_id")
	}
}

func TestClientJS(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	resp := h.get(h.browser(), "/bff/client.js")
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("client.js: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, export := range []string{"export async function getUser", "export function fetchApi", "export function onLogout", "export function login", "export async function logout"} {
		if !strings.Contains(b, export) {
			t.Errorf("client.js lacks %q", export)
		}
	}
}

// TestEventsHeartbeatRechecksSession: the shared wheel's heartbeat still
// reaches each stream, and still re-checks the store: a session gone
// without a message (here deleted behind the manager's back, as when a
// cross-replica message is missed) ends the stream with cause "unknown".
func TestEventsHeartbeatRechecksSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.gw.events.every = 250 * time.Millisecond // before the first stream
	c := h.login("/")
	_, lines := h.openEvents(c)
	waitLine(t, lines, ": connected", 5*time.Second)
	waitLine(t, lines, ": heartbeat", 5*time.Second)

	if _, err := h.store.Delete(t.Context(), h.sessionOf(c).ID); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "event: logout", 5*time.Second)
	data, _ := waitLine(t, lines, "data:", 5*time.Second)
	if !strings.Contains(data, `"cause":"unknown"`) {
		t.Errorf("data = %q, want the backstop's cause unknown", data)
	}
	waitClosed(t, lines, 5*time.Second)
}
