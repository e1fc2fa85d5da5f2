package proxy

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bffgate/bffgate/session"
)

// streamCall is the response writer of a proxied request of a session
// while Live is set. It passes everything through; at the first flush —
// httputil.ReverseProxy flushes streams (text/event-stream, unknown
// length) after every write, other responses at FlushInterval — the
// response is streaming and it registers with Live. Requests that never
// flush (ordinary API calls) touch no lock and allocate nothing: the
// writer comes from a pool.
type streamCall struct {
	http.ResponseWriter
	liveEntry
	live       *Live
	registered atomic.Bool

	mu   sync.Mutex
	done bool // the handler returned: the writer is not to be used
}

var streamCalls = sync.Pool{New: func() any { return new(streamCall) }}

func (c *streamCall) entry() *liveEntry { return &c.liveEntry }

// Unwrap lets http.ResponseController reach the server's writer.
func (c *streamCall) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// FlushError flushes, registering the stream at the first flush.
func (c *streamCall) FlushError() error {
	if !c.registered.Load() && c.registered.CompareAndSwap(false, true) {
		c.live.add(c)
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

// cut aborts the response: deadlines in the past on the client
// connection. Over HTTP/1 the server's background read fails, which
// cancels the request's context and so the upstream request; the proxy's
// copy fails and it aborts the handler (http.ErrAbortHandler), so the
// chunked body never ends cleanly. Over HTTP/2 the stream is reset.
func (c *streamCall) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	rc := http.NewResponseController(c.ResponseWriter)
	past := time.Unix(1, 0)
	_ = rc.SetReadDeadline(past)
	_ = rc.SetWriteDeadline(past)
}

// serveLive proxies r of session s with its connection known to l.
func (p *Proxy) serveLive(l *Live, w http.ResponseWriter, r *http.Request, s *session.Session) {
	if IsUpgrade(r) {
		p.serveUpgrade(l, w, r, s)
		return
	}
	c := streamCalls.Get().(*streamCall)
	c.ResponseWriter, c.live = w, l
	c.liveEntry = liveEntry{id: s.ID, app: s.App, kind: KindStream, seq: l.ends.Load(), created: s.CreatedAt}
	defer c.finish() // also when the proxy aborts (panics)
	p.rp.ServeHTTP(c, r)
}

// finish ends the call. A call that never registered goes back to the
// pool; one that did is left to the garbage collector, since a cut or a
// session check may still hold it.
func (c *streamCall) finish() {
	if !c.registered.Load() {
		c.ResponseWriter, c.live, c.liveEntry = nil, nil, liveEntry{}
		streamCalls.Put(c)
		return
	}
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	c.live.remove(c)
}
