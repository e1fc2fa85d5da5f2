package bff

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// cookieHeader is the Cookie header a signed-in client sends the gateway.
func (h *harness) cookieHeader(c *http.Client) string {
	u, _ := url.Parse(h.srv.URL)
	var parts []string
	for _, k := range c.Jar.Cookies(u) {
		parts = append(parts, k.Name+"="+k.Value)
	}
	return strings.Join(parts, "; ")
}

// parkedStreams counts the streams the broker holds without a handler
// goroutine.
func parkedStreams(b *broker) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, set := range b.subs {
		for st := range set {
			if st.p != nil {
				n++
			}
		}
	}
	return n
}

func waitParked(t *testing.T, b *broker, want int) {
	t.Helper()
	if err := proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if n := parkedStreams(b); n != want {
			return fmt.Errorf("%d parked streams, want %d", n, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// openRaw opens /bff/events over TCP and reads the response head.
func openRaw(t *testing.T, h *harness, c *http.Client) (net.Conn, *http.Response, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /bff/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCookie: %s\r\n\r\n", addr, h.cookieHeader(c))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, resp, br
}

// TestHijackedStreamHeaders: an HTTP/1.1 stream is taken over from
// net/http, and its hand-written response keeps what the middleware set
// (the request id), says no-store, and is delimited by the close, not
// chunked.
func TestHijackedStreamHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, resp, _ := openRaw(t, h, h.login("/"))
	if resp.StatusCode != http.StatusOK || !resp.Close || len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 {
		t.Errorf("stream: %d close=%v transfer-encoding %v length %d, want 200, Connection: close, unchunked, no length",
			resp.StatusCode, resp.Close, resp.TransferEncoding, resp.ContentLength)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Date") == "" {
		t.Errorf("headers %v lack the middleware's X-Request-ID or a Date", resp.Header)
	}
	lines := proctest.Lines(resp.Body, 10)
	waitLine(t, lines, ": connected", 5*time.Second)
	waitParked(t, h.gw.events, 1)
}

// TestCloseStreamsEndsHijacked: at shutdown a parked stream is told to
// reconnect and closed before CloseStreams returns, so the HTTP drain
// (which no longer sees the connection) can wait for it.
func TestCloseStreamsEndsHijacked(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, resp, _ := openRaw(t, h, h.login("/"))
	waitParked(t, h.gw.events, 1)

	h.gw.CloseStreams()
	if n := h.gw.events.count(); n != 0 {
		t.Errorf("%d streams open after CloseStreams returned, want 0", n)
	}
	b, err := io.ReadAll(resp.Body) // ends: the gateway closed the connection
	if err != nil || !strings.Contains(string(b), "event: reconnect\n") || strings.Contains(string(b), "logout") {
		t.Errorf("stream at shutdown: %q (%v), want a reconnect event, then the close", b, err)
	}
}

// TestHijackedStreamClosedByPeer: a tab that goes away frees its stream
// (and the caps it counted against) at once, not at the next heartbeat.
func TestHijackedStreamClosedByPeer(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn, _, _ := openRaw(t, h, h.login("/"))
	waitParked(t, h.gw.events, 1)
	conn.Close()
	waitParked(t, h.gw.events, 0)
	if n := h.gw.events.count(); n != 0 {
		t.Errorf("%d streams counted after the peer closed, want 0", n)
	}
}

// fakeSessions is the broker's session lookup, for tests without a store.
type fakeSessions struct{ gone atomic.Bool }

func (f *fakeSessions) Get(context.Context, string) (*session.Session, error) {
	if f.gone.Load() {
		return nil, session.ErrNotFound
	}
	return &session.Session{}, nil
}

// parkedPipe parks a stream of session "s" on one end of a pipe and
// returns the other end, the client's.
func parkedPipe(t *testing.T, b *broker) net.Conn {
	st, refused := b.subscribe("s", "u")
	if refused != "" {
		t.Fatal(refused)
	}
	srv, cli := net.Pipe()
	b.park(st, "s", "u", srv)
	return cli
}

// readAll collects what the client end gets until the gateway closes it.
func readAll(c net.Conn) <-chan string {
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c)
		out <- string(b)
	}()
	return out
}

// TestParkedStreamPeerSilent: a peer that vanished without a word (it
// reads nothing) is found at the next heartbeat, whose write times out;
// the stream is then closed and uncounted.
func TestParkedStreamPeerSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		cli := parkedPipe(t, b)
		time.Sleep(heartbeatEvery - heartbeatEvery/wheelSlots)
		synctest.Wait()
		if b.count() != 1 {
			t.Fatal("the stream ended before its heartbeat")
		}
		time.Sleep(heartbeatEvery/wheelSlots + streamWriteTimeout)
		synctest.Wait()
		if n := b.count(); n != 0 {
			t.Errorf("%d streams after the heartbeat to a vanished peer, want 0", n)
		}
		if _, err := cli.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("client end after cleanup: %v, want EOF (closed)", err)
		}
	})
}

// TestParkedStreamHeartbeats: a live peer gets one heartbeat per
// interval; a session found gone at a heartbeat ends with cause unknown.
func TestParkedStreamHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		got := readAll(parkedPipe(t, b))
		time.Sleep(2 * heartbeatEvery)
		synctest.Wait()
		if b.count() != 1 {
			t.Fatal("a live stream ended")
		}
		b.sessions.(*fakeSessions).gone.Store(true)
		time.Sleep(heartbeatEvery)
		synctest.Wait()
		want := ": heartbeat\n\n: heartbeat\n\nevent: logout\ndata: {\"cause\":\"unknown\"}\n\n"
		if s := <-got; s != want || b.count() != 0 {
			t.Errorf("client got %q, %d streams left; want %q, none", s, b.count(), want)
		}
	})
}

// TestParkedStreamLogout: an end published for the session is written
// with its cause, then the connection is closed; the peer closing
// instead frees the stream without a heartbeat.
func TestParkedStreamLogout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		got := readAll(parkedPipe(t, b))
		b.publish("s", "backchannel")
		if s, want := <-got, "event: logout\ndata: {\"cause\":\"backchannel\"}\n\n"; s != want {
			t.Errorf("client got %q, want %q", s, want)
		}
		synctest.Wait()
		if b.count() != 0 {
			t.Errorf("%d streams after the logout, want 0", b.count())
		}

		cli := parkedPipe(t, b)
		cli.Close()
		synctest.Wait()
		if b.count() != 0 {
			t.Errorf("%d streams after the peer closed, want 0", b.count())
		}
	})
}

// pipeWriter is a ResponseWriter that cannot be taken over (no Hijack),
// as under HTTP/2: what it gets is read from the other end of a pipe.
type pipeWriter struct {
	h http.Header
	*io.PipeWriter
}

func (w pipeWriter) Header() http.Header { return w.h }
func (w pipeWriter) WriteHeader(int)     {}
func (w pipeWriter) Flush()              {}

// TestEventsWithoutHijack: where the connection cannot be taken over the
// handler's goroutine holds the stream, which still ends with the
// logout's cause.
func TestEventsWithoutHijack(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/bff/events", nil)
	req.Header.Set("Cookie", h.cookieHeader(c))
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.gw.Handler().ServeHTTP(pipeWriter{http.Header{}, pw}, req)
		pw.Close()
	}()
	lines := proctest.Lines(pr, 10)
	waitLine(t, lines, ": connected", 5*time.Second)
	if n := parkedStreams(h.gw.events); n != 0 || h.gw.events.count() != 1 {
		t.Errorf("%d parked of %d streams, want 0 of 1", n, h.gw.events.count())
	}
	h.backchannel(h.logoutToken(nil, testop.SignOpts{}))
	data, _ := waitLine(t, lines, "data:", 5*time.Second)
	if !strings.Contains(data, `"cause":"backchannel"`) {
		t.Errorf("data = %q, want the cause backchannel", data)
	}
	<-done
}
