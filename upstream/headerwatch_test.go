package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeUpstream is a canceler whose requests wait until released or
// cancelled; it runs inside a synctest bubble.
type fakeUpstream struct {
	mu      sync.Mutex
	pending map[*http.Request]chan error
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{pending: map[*http.Request]chan error{}}
}

func (f *fakeUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	ch := make(chan error, 1)
	f.mu.Lock()
	f.pending[req] = ch
	f.mu.Unlock()
	if err := <-ch; err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func (f *fakeUpstream) finish(req *http.Request, err error) {
	f.mu.Lock()
	ch := f.pending[req]
	delete(f.pending, req)
	f.mu.Unlock()
	if ch != nil {
		ch <- err
	}
}

func (f *fakeUpstream) answer(req *http.Request) { f.finish(req, nil) }

func (f *fakeUpstream) CancelRequest(req *http.Request) {
	f.finish(req, errors.New("net/http: request canceled"))
}

// TestHeaderWatchTimesOutLateRequests: a request without its headers
// after the timeout fails with a timeout error within one check
// interval; one answered in time is not touched; the checker stops when
// nothing waits and comes back with the next request.
func TestHeaderWatchTimesOutLateRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = time.Second
		up := newFakeUpstream()
		w := newHeaderWatch(up, timeout)
		defer w.close()
		type result struct {
			err     error
			elapsed time.Duration
		}
		call := func(req *http.Request) chan result {
			ch := make(chan result, 1)
			go func() {
				start := time.Now()
				res, err := w.roundTrip(req)
				if res != nil {
					res.Body.Close()
				}
				ch <- result{err, time.Since(start)}
			}()
			return ch
		}
		late := httptest.NewRequest(http.MethodGet, "http://up.example/late", nil)
		quick := httptest.NewRequest(http.MethodGet, "http://up.example/quick", nil)
		lateDone, quickDone := call(late), call(quick)
		time.Sleep(timeout - time.Millisecond) // synctest: fake time
		synctest.Wait()
		up.answer(quick)
		if r := <-quickDone; r.err != nil {
			t.Errorf("answered before the timeout: %v", r.err)
		}
		r := <-lateDone
		var ne net.Error
		if !errors.As(r.err, &ne) || !ne.Timeout() {
			t.Fatalf("late request: err %v, want a net.Error with Timeout()", r.err)
		}
		if every := checkInterval(timeout); r.elapsed < timeout || r.elapsed > timeout+every {
			t.Errorf("timed out after %v, want within [%v, %v]", r.elapsed, timeout, timeout+every)
		}
		if n := w.waiting.Load(); n != 0 {
			t.Errorf("%d requests still counted as waiting", n)
		}

		time.Sleep(2 * checkInterval(timeout))
		synctest.Wait()
		if w.running.Load() {
			t.Error("the checker still runs with nothing waiting")
		}
		again := httptest.NewRequest(http.MethodGet, "http://up.example/again", nil)
		if r := <-call(again); r.err == nil || r.elapsed < timeout {
			t.Errorf("after the checker stopped: err %v after %v, want a timeout", r.err, r.elapsed)
		}
	})
}

// TestHeaderWatchAnswerAtTheDeadline: a response and the checker's
// decision racing end one way or the other, never both: a request the
// checker took out fails with the timeout even if its response came.
func TestHeaderWatchAnswerAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUpstream()
		w := newHeaderWatch(up, time.Second)
		defer w.close()
		req := httptest.NewRequest(http.MethodGet, "http://up.example/", nil)
		w.shards[0].start[req] = -time.Hour // registered long ago
		w.waiting.Add(1)
		late := w.takeLate(nil)
		if len(late) != 1 || late[0] != req {
			t.Fatalf("takeLate = %v, want the request", late)
		}
		// The response arrives before the cancel: still a timeout.
		res, err := w.finish(&w.shards[0], req, &http.Response{Body: http.NoBody}, nil)
		var ne net.Error
		if res != nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("got %v, %v; want the timeout", res, err)
		}
		if n := w.waiting.Load(); n != 0 {
			t.Errorf("%d requests counted as waiting, want 0", n)
		}
	})
}

// TestHeaderWatchClose: close stops the checker while requests wait;
// later requests go through unwatched.
func TestHeaderWatchClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newFakeUpstream()
		w := newHeaderWatch(up, time.Second)
		req := httptest.NewRequest(http.MethodGet, "http://up.example/", nil)
		done := make(chan error, 1)
		go func() {
			_, err := w.roundTrip(req)
			done <- err
		}()
		synctest.Wait()
		w.close()
		if w.running.Load() {
			t.Error("the checker runs after close")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		up.answer(req)
		if err := <-done; err != nil {
			t.Errorf("after close: %v, want the answer", err)
		}
	})
}

// testTimeout is the response-header timeout of the tests against real
// servers that must see it pass; slowTimeout that of those where every
// answer comes at once and only a stall of the machine longer than it
// could fail the test; parts slower than the timeout take 3 of it.
const (
	testTimeout = 100 * time.Millisecond
	slowTimeout = 300 * time.Millisecond
)

func newTestProxyTransport(t *testing.T, timeout time.Duration) *ProxyTransport {
	t.Helper()
	tr := NewProxyTransport(TransportConfig{ResponseHeaderTimeout: timeout})
	t.Cleanup(tr.Close)
	return tr
}

// TestProxyTransportHungUpstream: a GET to an upstream that never
// answers fails with a timeout error, and the upstream sees the request
// go away (its connection closed).
func TestProxyTransportHungUpstream(t *testing.T) {
	gone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(gone)
	}))
	t.Cleanup(up.Close)
	tr := newTestProxyTransport(t, testTimeout)
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
	type result struct {
		res *http.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		done <- result{res, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(50 * testTimeout):
		// Go documents that Transport.CancelRequest "may become a no-op
		// in a future release": the watcher would then bound nothing.
		t.Fatal("a hung request outlived 50 timeouts: Transport.CancelRequest no longer cancels (a Go upgrade?)")
	}
	res, err := r.res, r.err
	var ne net.Error
	if res != nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, %v; want a timeout error", res, err)
	}
	if d := time.Since(start); d < testTimeout {
		t.Errorf("timed out after %v, before the timeout %v", d, testTimeout)
	}
	<-gone
}

// TestProxyTransportSlowParts: only the wait for the headers is bounded.
// An upload that takes longer than the timeout (a request with a body:
// net/http's timer, from the end of the upload), a response that streams
// for longer than the timeout after its headers, and an upgraded
// connection idle for longer than the timeout all complete.
func TestProxyTransportSlowParts(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, _ := io.Copy(io.Discard, r.Body)
			io.WriteString(w, strings.Repeat("x", int(n)))
		case "/stream":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-time.After(3 * slowTimeout)
			io.WriteString(w, "end")
		case "/upgrade":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	}))
	t.Cleanup(up.Close)
	tr := newTestProxyTransport(t, slowTimeout)

	t.Run("upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 3 {
				<-time.After(slowTimeout)
				pw.Write([]byte("abc"))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, up.URL+"/upload", pr)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("slow upload: %v", err)
		}
		defer res.Body.Close()
		if body, _ := io.ReadAll(res.Body); string(body) != "xxxxxxxxx" {
			t.Errorf("body %q, want the 9 bytes echoed", body)
		}
	})
	t.Run("stream", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/stream", nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if body, err := io.ReadAll(res.Body); err != nil || string(body) != "end" {
			t.Errorf("streamed body %q, %v; want end", body, err)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/upgrade", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "test")
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		rw, ok := res.Body.(io.ReadWriteCloser)
		if res.StatusCode != http.StatusSwitchingProtocols || !ok {
			t.Fatalf("status %d, body %T; want 101 and a connection", res.StatusCode, res.Body)
		}
		defer rw.Close()
		<-time.After(3 * slowTimeout)
		io.WriteString(rw, "hello\n")
		if line, err := bufio.NewReader(rw).ReadString('\n'); err != nil || line != "echo hello\n" {
			t.Errorf("after idling: %q, %v; want the echo", line, err)
		}
	})
}

// TestProxyTransportNoTimerPerRequest: a watched request allocates less
// than the same request through net/http's per-request timer (a timer
// and its channel).
func TestProxyTransportNoTimerPerRequest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	timed := NewTransport(TransportConfig{})
	t.Cleanup(timed.CloseIdleConnections)
	watched := newTestProxyTransport(t, DefaultResponseHeaderTimeout)
	allocs := func(rt http.RoundTripper) float64 {
		req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
		get := func() {
			res, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		get() // a keep-alive connection
		return testing.AllocsPerRun(300, get)
	}
	a, b := allocs(timed), allocs(watched)
	if b > a-1.5 {
		t.Errorf("watched request: %.1f allocations, net/http's timer: %.1f; want at least 1.5 fewer", b, a)
	}
}

// TestProxyTransportConnCap: with max_conns_per_host, a GET and a POST
// to one host share the capped connections (one here): the watched
// transport's own pool would have opened a second connection.
func TestProxyTransportConnCap(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	tr := NewProxyTransport(TransportConfig{MaxConnsPerHost: 1})
	t.Cleanup(tr.Close)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodGet} {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("{}")
		}
		req, _ := http.NewRequest(method, up.URL, body)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("the upstream saw %d connections, want 1 (max_conns_per_host = 1)", conns)
	}
}
