package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/bff"
)

// liveServer is the [server] of a config with defaults, after mutate.
func liveServer(mutate func(*bff.ServerConfig)) bff.ServerConfig {
	s := bff.ServerConfig{PublicURL: "http://gw.example"}
	mutate(&s)
	s.Defaults()
	return s
}

// TestLoweredMaxConnections: lowering max_connections while running
// closes no connection (both keep working) and refuses a new one beyond
// it until the count is below the new cap; raising it lets the waiting
// one in at once.
func TestLoweredMaxConnections(t *testing.T) {
	live := newLiveLimits(liveServer(func(s *bff.ServerConfig) { s.MaxConnections = 2 }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(limitListener(ln, live.conns, prometheus.NewGauge(prometheus.GaugeOpts{Name: "t"})))
	t.Cleanup(func() { srv.Close() })

	type conn struct {
		net.Conn
		r *bufio.Reader
	}
	dial := func() conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return conn{c, bufio.NewReader(c)}
	}
	send := func(c conn) {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	// answer reads the answer on c within d.
	answer := func(c conn, d time.Duration) error {
		c.SetReadDeadline(time.Now().Add(d))
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	get := func(c conn, d time.Duration) error {
		send(c)
		return answer(c, d)
	}
	a, b := dial(), dial()
	for _, c := range []conn{a, b} {
		if err := get(c, 5*time.Second); err != nil {
			t.Fatalf("under the cap of 2: %v", err)
		}
	}
	live.apply(liveServer(func(s *bff.ServerConfig) { s.MaxConnections = 1 }))
	for _, c := range []conn{a, b} {
		if err := get(c, 5*time.Second); err != nil {
			t.Fatalf("an open connection after the cap went from 2 to 1: %v, want it kept", err)
		}
	}
	c := dial() // in the kernel's accept queue
	send(c)
	if err := answer(c, 300*time.Millisecond); err == nil {
		t.Fatal("a 3rd connection was served over a cap lowered to 1")
	}
	a.Close()
	if err := answer(c, 300*time.Millisecond); err == nil {
		t.Fatal("served with 1 connection open under a cap of 1")
	}
	live.apply(liveServer(func(s *bff.ServerConfig) { s.MaxConnections = 3 }))
	if err := answer(c, 5*time.Second); err != nil {
		t.Fatalf("after the cap was raised to 3: %v", err)
	}
}

// TestLiveLogLevel: a reload between debug and info changes what is
// logged, at once.
func TestLiveLogLevel(t *testing.T) {
	live := newLiveLimits(liveServer(func(*bff.ServerConfig) {}))
	var out bytes.Buffer
	logger := newLogger(liveServer(func(*bff.ServerConfig) {}), &live.level, &out)
	logged := func(msg string) bool {
		logger.Debug(msg)
		return strings.Contains(out.String(), msg)
	}
	if logged("first") {
		t.Error("a debug line logged at the default level info")
	}
	live.apply(liveServer(func(s *bff.ServerConfig) { s.LogLevel = "debug" }))
	if !logged("second") {
		t.Error("no debug line after a reload to debug")
	}
	live.apply(liveServer(func(s *bff.ServerConfig) { s.LogLevel = "info" }))
	if logged("third") {
		t.Error("a debug line after a reload back to info")
	}
}

// TestLiveBodyLimits: a reload's body_read_timeout and body_min_rate
// hold the bodies that start after it.
func TestLiveBodyLimits(t *testing.T) {
	live := newLiveLimits(liveServer(func(*bff.ServerConfig) {}))
	got := make(chan bodyLimits, 1)
	h := limitBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := r.Body.(*deadlineBody)
		if b == nil {
			got <- bodyLimits{}
			return
		}
		got <- bodyLimits{idle: b.idle, minRate: int(b.minRate)}
	}), &live.body, prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}))
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	post := func() bodyLimits {
		t.Helper()
		resp, err := http.Post("http://"+ln.Addr().String(), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return <-got
	}
	if l := post(); l != (bodyLimits{idle: 30 * time.Second, minRate: 1024}) {
		t.Errorf("at the start: %+v, want the defaults 30s and 1024", l)
	}
	live.apply(liveServer(func(s *bff.ServerConfig) { s.BodyReadTimeout, s.BodyMinRate = 5*time.Second, 10 }))
	if l := post(); l != (bodyLimits{idle: 5 * time.Second, minRate: 10}) {
		t.Errorf("after a reload to 5s and 10: %+v", l)
	}
}
