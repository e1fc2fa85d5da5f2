package bff

import (
	"bufio"
	"net"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawStream opens /bff/events over a bare TCP connection with the given
// cookie and reads up to ": connected"; the connection then stays open
// with nothing on the client side but the socket, so that what the
// process holds per stream is the gateway's.
func rawStream(tb testing.TB, addr, cookie string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	req := "GET /bff/events HTTP/1.1\r\nHost: " + addr + "\r\nCookie: " + cookie + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(conn, 512)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("stream: %v", err)
		}
		if strings.HasPrefix(l, "HTTP/1.1 ") && !strings.HasPrefix(l, "HTTP/1.1 200") {
			tb.Fatalf("stream: %s", l)
		}
		if strings.HasPrefix(l, ": connected") {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	return conn
}

// heapAndStacks is what the process holds after a GC: live heap plus
// goroutine stacks.
func heapAndStacks() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}

// measureStreams opens n streams through the real handler (httptest
// server, real sessions, 8 streams a session) and returns the heap bytes,
// stack bytes and goroutines each one adds. It measures between n and 2n
// open streams, so that what the logins left behind (client and OP
// connections) does not count.
func measureStreams(tb testing.TB, n int) (heap, stack, goroutines float64) {
	h := newHarness(tb, harnessOpts{server: func(c *ServerConfig) {
		c.MaxEventStreams = 2*n + 1
		c.MaxEventStreamsPerUser = 2*n + 1
		c.RateLimits.Login.Off = true
	}})
	u, _ := url.Parse(h.srv.URL)
	var cookies []string
	for range (2*n + maxStreamsPerSession - 1) / maxStreamsPerSession {
		c := h.login("/")
		var parts []string
		for _, k := range c.Jar.Cookies(u) {
			parts = append(parts, k.Name+"="+k.Value)
		}
		cookies = append(cookies, strings.Join(parts, "; "))
		c.CloseIdleConnections()
	}
	h.srv.Client().CloseIdleConnections()
	addr := u.Host
	conns := make([]net.Conn, 0, 2*n)
	for i := range n {
		conns = append(conns, rawStream(tb, addr, cookies[i/maxStreamsPerSession]))
	}
	h0, s0 := heapAndStacks()
	g0 := runtime.NumGoroutine()
	for i := n; i < 2*n; i++ {
		conns = append(conns, rawStream(tb, addr, cookies[i/maxStreamsPerSession]))
	}
	h1, s1 := heapAndStacks()
	g1 := runtime.NumGoroutine()
	runtime.KeepAlive(conns)
	f := float64(n)
	return (float64(h1) - float64(h0)) / f, (float64(s1) - float64(s0)) / f, float64(g1-g0) / f
}

// TestEventStreamMemory: what one open /bff/events stream costs the
// process, against issue 15's goal of at most 10 KiB, and no goroutine
// per parked stream (an HTTP/1.1 stream is held by the broker, not by a
// handler goroutine).
func TestEventStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1000 streams")
	}
	heap, stack, gs := measureStreams(t, 1000)
	t.Logf("per stream: heap %.0f B, stacks %.0f B, total %.1f KiB, %.2f goroutines", heap, stack, (heap+stack)/1024, gs)
	if heap+stack > 10*1024 {
		t.Errorf("per stream %.1f KiB, want ≤ 10 KiB", (heap+stack)/1024)
	}
	// A few transient goroutines may come and go; one per stream may not.
	if gs > 0.01 {
		t.Errorf("per stream %.2f goroutines, want 0", gs)
	}
}

// BenchmarkEventStreams reports the same figures as metrics
// (go test -run '^$' -bench EventStreams ./bff/).
func BenchmarkEventStreams(b *testing.B) {
	var heap, stack, gs float64
	for b.Loop() {
		heap, stack, gs = measureStreams(b, 2000)
	}
	b.ReportMetric(heap, "heapB/stream")
	b.ReportMetric(stack, "stackB/stream")
	b.ReportMetric(gs, "goroutines/stream")
}
