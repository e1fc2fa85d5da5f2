package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bffgate/bffgate/session"
)

const (
	// cutWriteTimeout bounds the writes to a client of a WebSocket being
	// cut: the rest of the frame under way and the close frame.
	cutWriteTimeout = 500 * time.Millisecond
	// frameGrace is how long a cut waits for the upstream to finish the
	// frame under way, so that the close frame does not break it.
	frameGrace = 200 * time.Millisecond
	// lingerTimeout is how long the gateway waits for the browser's
	// answer to its close frame before it closes the connection.
	lingerTimeout = 500 * time.Millisecond
)

// errCut is what the copy loops get once a connection was cut.
var errCut = errors.New("proxied connection cut: session ended")

// IsUpgrade reports whether r asks to switch protocols (Connection:
// upgrade and an Upgrade header), as httputil.ReverseProxy decides.
func IsUpgrade(r *http.Request) bool {
	if len(r.Header["Upgrade"]) == 0 {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// serveUpgrade proxies a protocol switch (WebSocket) of session s and
// registers the switched connection with Live, which cuts it when the
// session ends: the browser gets a close frame (1008 "session ended"),
// the upstream connection is closed.
func (p *Proxy) serveUpgrade(l *Live, w http.ResponseWriter, r *http.Request, s *session.Session) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ws := &wsConn{
		liveEntry: liveEntry{id: s.ID, app: s.App, kind: KindWebSocket, seq: l.ends.Load(), created: s.CreatedAt},
		live:      l,
		cancel:    cancel,
		websocket: strings.EqualFold(r.Header.Get("Upgrade"), "websocket"),
		frame:     closeFrame,
		sent:      make(chan struct{}),
	}
	p.rp.ServeHTTP(&wsWriter{ResponseWriter: w, ws: ws}, r.WithContext(ctx))
}

// wsWriter hands httputil.ReverseProxy the client connection wrapped, when
// it hijacks it after the upstream's 101.
type wsWriter struct {
	http.ResponseWriter
	ws *wsConn
}

func (w *wsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes the client connection over and registers it.
func (w *wsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	ws := w.ws
	ws.conn = conn
	ws.live.add(ws)
	c := &clientConn{Conn: conn, ws: ws}
	// The 101 goes through headerWriter: once it is out, a close frame
	// may follow.
	return c, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(headerWriter{ws})), nil
}

// wsConn is one switched connection as Live sees it.
type wsConn struct {
	liveEntry
	live      *Live
	cancel    context.CancelFunc // closes the upstream connection
	websocket bool               // the protocol is WebSocket: send a close frame
	conn      net.Conn           // the client connection
	// frame is the close frame a cut sends (closeFrame unless the
	// gateway shuts down); set before the cut.
	frame []byte

	mu        sync.Mutex
	started   bool   // the 101 is out
	cutting   bool   // the session ended
	sentClose bool   // the close frame is out
	closed    bool   // the proxy closed the connection
	down      frames // the upstream's frames to the client
	up        frames // the client's frames
	sent      chan struct{}
}

func (ws *wsConn) entry() *liveEntry { return &ws.liveEntry }

// cut sends the close frame as soon as no upstream frame is half
// written (waiting frameGrace at most), then closes the upstream side;
// the proxy then closes the client connection (clientConn.Close).
func (ws *wsConn) cut() {
	_ = ws.conn.SetWriteDeadline(time.Now().Add(cutWriteTimeout))
	ws.mu.Lock()
	ws.cutting = true
	ws.sendCloseLocked()
	wait := ws.started && !ws.sentClose && !ws.closed
	ws.mu.Unlock()
	if wait {
		t := time.NewTimer(frameGrace)
		select {
		case <-ws.sent:
		case <-t.C:
		}
		t.Stop()
	}
	ws.cancel()
}

// sendCloseLocked writes the close frame if the connection is cut, the
// 101 is out and no upstream frame is half written. ws.mu is held.
func (ws *wsConn) sendCloseLocked() {
	if !ws.cutting || !ws.started || ws.sentClose || ws.closed || ws.down.inFrame() {
		return
	}
	ws.sentClose = true
	close(ws.sent)
	if ws.websocket {
		_, _ = ws.conn.Write(ws.frame)
	}
}

// headerWriter writes the 101 response to the client connection.
type headerWriter struct{ ws *wsConn }

func (h headerWriter) Write(p []byte) (int, error) {
	ws := h.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n, err := ws.conn.Write(p)
	if err == nil {
		ws.started = true
		ws.sendCloseLocked() // cut before the 101 went out
	}
	return n, err
}

// clientConn is the client connection as the proxy's copy loops see it.
// It implements only net.Conn, so that io.Copy writes through Write.
type clientConn struct {
	net.Conn
	ws *wsConn
}

// Write passes the upstream's bytes on. Once cut, it passes only the
// rest of the frame under way, then the close frame, and fails.
func (c *clientConn) Write(p []byte) (int, error) {
	ws := c.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.cutting {
		n, err := c.Conn.Write(p)
		ws.down.feed(p[:n], false)
		return n, err
	}
	if !ws.sentClose && ws.down.inFrame() {
		k := ws.down.feed(p, true)
		if n, err := c.Conn.Write(p[:k]); err != nil {
			return n, err
		}
		ws.sendCloseLocked()
		if !ws.sentClose {
			return k, nil // the frame goes on: keep copying it
		}
		return k, errCut
	}
	return 0, errCut
}

// Read passes the client's bytes on, following its frames so that the
// linger after a close frame can end at the browser's answer.
func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	ws := c.ws
	ws.mu.Lock()
	ws.up.feed(p[:n], false)
	sent := ws.sentClose
	ws.mu.Unlock()
	if sent && err == nil {
		return n, errCut // the upstream is going away too
	}
	return n, err
}

// Close unregisters the connection and closes it; after a close frame it
// first waits (lingerTimeout at most) for the browser's answer, so that
// the close frame is not lost to a reset.
func (c *clientConn) Close() error {
	ws := c.ws
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return nil
	}
	ws.sendCloseLocked()
	ws.closed = true
	linger := ws.sentClose && ws.websocket && !ws.up.closed
	ws.mu.Unlock()
	ws.live.remove(ws)
	if !linger {
		return c.Conn.Close()
	}
	go c.linger()
	return nil
}

// linger reads the client's frames until its close frame, EOF or
// lingerTimeout, then closes the connection.
func (c *clientConn) linger() {
	defer c.Conn.Close()
	_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	buf := make([]byte, 512)
	for {
		n, err := c.Conn.Read(buf)
		ws := c.ws
		ws.mu.Lock()
		ws.up.feed(buf[:n], false)
		done := ws.up.closed
		ws.mu.Unlock()
		if done || err != nil {
			return
		}
	}
}

var _ io.ReadWriteCloser = (*clientConn)(nil)
