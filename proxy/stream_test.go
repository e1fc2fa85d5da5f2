package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
)

// newFront serves p over real HTTP, with a copy of s for each request, as
// the bff does.
func newFront(t *testing.T, p *Proxy, s *session.Session) *httptest.Server {
	t.Helper()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeSession(w, r, s.Clone())
	}))
	t.Cleanup(front.Close)
	return front
}

// streamTimeout bounds each wait for streamed data.
const streamTimeout = 5 * time.Second

func TestSSEFlushesImmediately(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: ping\ndata: 1\n\n")
		w.(http.Flusher).Flush()
		select { // the handler does not return before the test saw the event
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: 2\n\n")
	}))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	front := newFront(t, p, validSession())

	res, err := front.Client().Get(front.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := proctest.Lines(res.Body, 0)
	for _, want := range []string{"event: ping", "data: 1"} {
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("line = %q, want %q", got, want)
			}
		case <-time.After(streamTimeout):
			t.Fatalf("no %q before the upstream handler returned: not flushed", want)
		}
	}
	close(release)
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if got := strings.Join(rest, "|"); got != "|data: 2|" {
		t.Errorf("rest of stream = %q, want %q", got, "|data: 2|")
	}
}

func TestChunkedPassthrough(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"n":1}`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprintln(w, `{"n":2}`)
	}))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	front := newFront(t, p, validSession())

	res, err := front.Client().Get(front.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" || res.ContentLength != -1 {
		t.Errorf("TransferEncoding = %q, ContentLength = %d; want chunked, -1", res.TransferEncoding, res.ContentLength)
	}
	first := make(chan string, 1)
	br := bufio.NewReader(res.Body)
	go func() {
		l, _ := br.ReadString('\n')
		first <- l
	}()
	select {
	case got := <-first:
		if got != "{\"n\":1}\n" {
			t.Errorf("first chunk = %q, want {\"n\":1}", got)
		}
	case <-time.After(streamTimeout):
		t.Fatal("first chunk not delivered before the upstream finished")
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "{\"n\":2}\n" {
		t.Errorf("rest = %q, %v; want {\"n\":2}", rest, err)
	}
}

func TestWebSocketUpgradeEcho(t *testing.T) {
	gotAuth := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		gotAuth <- r.Header.Get("Authorization")
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		_, _ = io.Copy(conn, brw) // echo until the client closes
	}))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	front := newFront(t, p, validSession())

	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(streamTimeout))
	fmt.Fprint(conn, "GET /api/ws HTTP/1.1\r\nHost: app.example\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer forged\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake = %d Upgrade %q, want 101 websocket", res.StatusCode, res.Header.Get("Upgrade"))
	}
	if got := <-gotAuth; got != "Bearer at-1" {
		t.Errorf("upstream Authorization on upgrade = %q, want Bearer at-1", got)
	}
	for _, msg := range []string{"hello", "again"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Errorf("echo = %q, %v; want %q", buf, err, msg)
		}
	}
}
