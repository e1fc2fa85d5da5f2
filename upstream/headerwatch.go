package upstream

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ProxyTransport carries the proxied requests: NewTransport's transport,
// except that on plain-HTTP upstreams the response-header timeout of
// requests without a body is kept by one shared watcher instead of a
// timer per request. net/http's ResponseHeaderTimeout makes a timer and
// its channel for every request and adds a case to the select that waits
// for the response, about a microsecond of CPU per request, measured
// under load; the watcher registers a request in a map and checks them
// all a few times per timeout. Requests with a body (the timeout runs
// from the end of the upload, which only the transport sees) and HTTPS
// upstreams (an HTTP/2 stream cannot be cancelled from outside) keep
// net/http's timer.
type ProxyTransport struct {
	// plain carries the watched requests (no timer of its own); timed
	// carries the others, with net/http's ResponseHeaderTimeout.
	plain, timed *http.Transport
	watch        *headerWatch
}

// NewProxyTransport returns the transport for proxied requests, with
// cfg's defaults applied (call Validate first). Close it when done.
//
// The two transports keep their own keep-alive connections (so up to
// twice max_idle_conns_per_host idle ones to a host). With
// max_conns_per_host set, every request goes through the timed one, so
// that the cap holds for all connections to a host.
func NewProxyTransport(cfg TransportConfig) *ProxyTransport {
	cfg = cfg.withDefaults()
	t := &ProxyTransport{timed: NewTransport(cfg)}
	if cfg.MaxConnsPerHost == 0 {
		t.plain = NewTransport(cfg)
		t.plain.ResponseHeaderTimeout = 0 // the watcher's
		t.watch = newHeaderWatch(t.plain, cfg.ResponseHeaderTimeout)
	}
	return t
}

// RoundTrip implements http.RoundTripper. A request that has waited
// longer than the response-header timeout for its response fails with an
// error whose Timeout() is true (the proxy answers 504).
func (t *ProxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.watch == nil || req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody) {
		return t.timed.RoundTrip(req)
	}
	return t.watch.roundTrip(req)
}

// CloseIdleConnections closes the keep-alive connections of both
// transports.
func (t *ProxyTransport) CloseIdleConnections() {
	if t.plain != nil {
		t.plain.CloseIdleConnections()
	}
	t.timed.CloseIdleConnections()
}

// Close stops the watcher and closes the idle connections. Requests
// still in flight complete without the header timeout.
func (t *ProxyTransport) Close() {
	if t.watch != nil {
		t.watch.close()
	}
	t.CloseIdleConnections()
}

// canceler is what the watcher needs of the transport under it:
// *http.Transport, whose CancelRequest (deprecated, but the one way to
// cancel an HTTP/1 request without a context of its own, which would
// cost a request copy and a context per request) closes the request's
// connection. Go documents that it may become a no-op in a future
// release; TestProxyTransportHungUpstream fails if it does.
type canceler interface {
	http.RoundTripper
	CancelRequest(*http.Request)
}

// watchShards is how many independently locked maps hold the waiting
// requests.
const watchShards = 16

// headerWatch bounds how long requests wait for their response headers.
// Each request is in one shard's map from RoundTrip until its headers
// (or an error) came back; one goroutine, running only while requests
// wait, looks every `every` for those older than the timeout, takes them
// out and cancels them. A request that finds itself taken out knows it
// timed out.
type headerWatch struct {
	rt      canceler
	timeout time.Duration
	every   time.Duration
	epoch   time.Time // the monotonic clock's origin for the start times
	next    atomic.Uint32
	shards  [watchShards]watchShard
	waiting atomic.Int64 // requests in the maps
	running atomic.Bool  // the checker goroutine runs
	closed  atomic.Bool
	stop    chan struct{}
	done    sync.WaitGroup
}

type watchShard struct {
	mu sync.Mutex
	// start is each waiting request's start, in nanoseconds since epoch.
	start map[*http.Request]time.Duration
}

func newHeaderWatch(rt canceler, timeout time.Duration) *headerWatch {
	w := &headerWatch{rt: rt, timeout: timeout, every: checkInterval(timeout), epoch: time.Now(), stop: make(chan struct{})}
	for i := range w.shards {
		w.shards[i].start = map[*http.Request]time.Duration{}
	}
	return w
}

// checkInterval is how often the watcher looks: a tenth of the timeout,
// within [10ms, 1s]. A request times out within that much after the
// timeout.
func checkInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Millisecond), time.Second)
}

// errHeaderTimeout is the error of a request whose headers did not come
// in time; as net/http's own, it is a net.Error whose Timeout() is true.
type errHeaderTimeout struct{}

func (errHeaderTimeout) Error() string   { return "upstream: timeout awaiting response headers" }
func (errHeaderTimeout) Timeout() bool   { return true }
func (errHeaderTimeout) Temporary() bool { return true }

func (w *headerWatch) roundTrip(req *http.Request) (*http.Response, error) {
	if w.closed.Load() {
		return w.rt.RoundTrip(req)
	}
	sh := &w.shards[w.next.Add(1)%watchShards]
	sh.mu.Lock()
	sh.start[req] = time.Since(w.epoch)
	sh.mu.Unlock()
	w.waiting.Add(1)
	w.wake()
	res, err := w.rt.RoundTrip(req)
	return w.finish(sh, req, res, err)
}

// finish takes req out of its shard and returns what its round trip
// returned, or the timeout if the checker took it out first (whatever
// came back since: the decision was made).
func (w *headerWatch) finish(sh *watchShard, req *http.Request, res *http.Response, err error) (*http.Response, error) {
	sh.mu.Lock()
	_, waiting := sh.start[req]
	delete(sh.start, req)
	sh.mu.Unlock()
	if waiting {
		w.waiting.Add(-1)
		return res, err
	}
	if res != nil {
		res.Body.Close()
	}
	return nil, errHeaderTimeout{}
}

// wake starts the checker unless it runs.
func (w *headerWatch) wake() {
	if w.running.Load() || !w.running.CompareAndSwap(false, true) {
		return
	}
	w.done.Add(1)
	go w.check()
}

// check looks for late requests every w.every while any waits, then
// exits.
func (w *headerWatch) check() {
	defer w.done.Done()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	var late []*http.Request
	for {
		select {
		case <-w.stop:
			w.running.Store(false)
			return
		case <-tick.C:
		}
		late = w.takeLate(late[:0])
		for _, req := range late {
			w.rt.CancelRequest(req)
		}
		clear(late)
		if w.waiting.Load() > 0 {
			continue
		}
		w.running.Store(false)
		// A request that registered after the count was read saw the
		// checker running and did not start one: take over again.
		if w.waiting.Load() == 0 || !w.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// takeLate removes the requests that have waited longer than the timeout
// from the maps and appends them to late.
func (w *headerWatch) takeLate(late []*http.Request) []*http.Request {
	deadline := time.Since(w.epoch) - w.timeout
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		for req, start := range sh.start {
			if start <= deadline {
				delete(sh.start, req)
				late = append(late, req)
			}
		}
		sh.mu.Unlock()
	}
	w.waiting.Add(-int64(len(late)))
	return late
}

// close stops the checker and waits for it; later requests are not
// watched.
func (w *headerWatch) close() {
	if w.closed.Swap(true) {
		return
	}
	close(w.stop)
	w.done.Wait()
}
