package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connMetrics count the listeners' connections and the bodies cut by
// their read deadline.
type connMetrics struct {
	open         *prometheus.GaugeVec
	bodyTimeouts prometheus.Counter
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bffgate_http_connections",
			Help: "Open client connections, by listener (gateway, admin).",
		}, []string{"listener"}),
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bffgate_http_body_timeouts_total",
			Help: "Request bodies that did not arrive in time (body_read_timeout, body_min_rate); their connections were closed.",
		}),
	}
	reg.MustRegister(m.open, m.bodyTimeouts)
	return m
}

// limitListener caps the connections a listener holds at once, at
// conns's cap; beyond it new ones wait in the kernel's accept queue (no
// descriptor, no goroutine) until one closes or the cap is raised. A
// connection counts, in open, until it is closed, also after its handler
// took it over from net/http (a parked event stream), which net/http's
// ConnState no longer sees.
func limitListener(ln net.Listener, conns *connCap, open prometheus.Gauge) net.Listener {
	return &cappedListener{Listener: ln, conns: conns, done: make(chan struct{}), open: open}
}

// connCap is a listener's connection cap, which a reload changes while
// it runs, and the connections it counts. Lowering the cap closes no
// connection: new ones wait until the count is below it.
type connCap struct {
	max atomic.Int64
	mu  sync.Mutex
	n   int64
	// freed is closed, and cleared, when a slot may have come free (a
	// connection closed, the cap raised); nil while no Accept waits.
	freed chan struct{}
}

func newConnCap(max int) *connCap {
	c := &connCap{}
	c.max.Store(int64(max))
	return c
}

// set changes the cap.
func (c *connCap) set(max int) {
	c.max.Store(int64(max))
	c.wake()
}

// take takes a slot if one is free, else returns the channel that tells
// when to try again.
func (c *connCap) take() (ok bool, retry <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n < c.max.Load() {
		c.n++
		return true, nil
	}
	if c.freed == nil {
		c.freed = make(chan struct{})
	}
	return false, c.freed
}

func (c *connCap) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	c.wakeLocked()
}

func (c *connCap) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeLocked()
}

func (c *connCap) wakeLocked() {
	if c.freed != nil {
		close(c.freed)
		c.freed = nil
	}
}

// cappedListener is netutil.LimitListener with a cap that can change,
// plus the count, with connections that expose what they wrap (NetConn),
// so that the gateway can watch a parked stream's socket for its peer
// going away.
type cappedListener struct {
	net.Listener
	conns     *connCap
	done      chan struct{}
	closeOnce sync.Once
	open      prometheus.Gauge
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		ok, retry := l.conns.take()
		if ok {
			break
		}
		select {
		case <-retry:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.conns.release()
		return nil, err
	}
	l.open.Inc()
	return &cappedConn{Conn: c, l: l}, nil
}

func (l *cappedListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type cappedConn struct {
	net.Conn
	l       *cappedListener
	release sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() {
		c.l.open.Dec()
		c.l.conns.release()
	})
	return err
}

// NetConn is the connection it wraps (as crypto/tls's Conn.NetConn).
func (c *cappedConn) NetConn() net.Conn { return c.Conn }

// limitBodies puts a progress-based read deadline on every request body:
// each read must get bytes within idle, and the time spent waiting for the
// client may exceed idle only as far as the bytes already in allow at
// minRate bytes per second. A connection that sends headers and then
// nothing, or a trickle, is closed by the server; a large upload that
// keeps going is not, nor is one the handler reads slowly (time spent
// outside Read, e.g. while the upstream applies backpressure, does not
// count). Requests without a body (event streams, WebSocket upgrades) get
// no deadline, and once a body is read to its end the deadline is lifted,
// so a long response is never cut.
func limitBodies(h http.Handler, limits *atomic.Pointer[bodyLimits], timedOut prometheus.Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		l := limits.Load() // as at the body's start, for all of it
		rc := http.NewResponseController(w)
		// Also bounds net/http's own read of an unread body when the
		// handler answers without reading it (a 401, a 400).
		if err := rc.SetReadDeadline(time.Now().Add(l.idle)); err == nil {
			r.Body = &deadlineBody{body: r.Body, rc: rc, idle: l.idle, minRate: float64(l.minRate), timedOut: timedOut}
		}
		h.ServeHTTP(w, r)
	})
}

// bodyLimits are body_read_timeout and body_min_rate; a reload swaps
// them, and each request body is held to those of its start.
type bodyLimits struct {
	idle    time.Duration
	minRate int
}

// deadlineBody sets the connection's read deadline before each read of a
// body. Handlers read a body from one goroutine at a time.
type deadlineBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	minRate  float64
	read     int64         // bytes so far
	waited   time.Duration // time spent in Read so far
	ended    bool
	timedOut prometheus.Counter
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.body.Read(p)
	}
	start := time.Now()
	_ = b.rc.SetReadDeadline(start.Add(b.allowance()))
	n, err := b.body.Read(p)
	b.waited += time.Since(start)
	b.read += int64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut.Inc()
		b.ended = true // the connection is done for; count it once
	}
	if errors.Is(err, io.EOF) {
		// The whole body is in: the rest of the exchange (a streamed
		// response, net/http's wait for the next request) is not ours.
		b.ended = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// allowance is how long the next read may wait: idle at most, less once
// the waiting so far outruns what minRate allows for the bytes read.
func (b *deadlineBody) allowance() time.Duration {
	earned := b.idle + time.Duration(float64(b.read)/b.minRate*float64(time.Second))
	return min(b.idle, earned-b.waited)
}

func (b *deadlineBody) Close() error { return b.body.Close() }
