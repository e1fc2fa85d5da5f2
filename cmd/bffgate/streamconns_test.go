package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// TestParkedStreamsHoldConnections: an event stream taken over from
// net/http still holds one of max_connections and still counts in
// bffgate_http_connections, until its peer closes it; then the slot is
// free at once.
func TestParkedStreamsHoldConnections(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	op.SetRedirectURL("http://" + listen + "/bff/callback")
	g := runGateway(t, signInConfig(t, op, listen, admin, "max_connections = 3\nmax_event_streams = 2", "", ""), listen, admin)
	t.Cleanup(func() { g.cancel(); <-g.done })
	c := signIn(t, g.public)
	c.CloseIdleConnections()
	u, _ := url.Parse(g.public)
	var cookie []string
	for _, k := range c.Jar.Cookies(u) {
		cookie = append(cookie, k.Name+"="+k.Value)
	}
	var streams []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /bff/events HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n", listen, strings.Join(cookie, "; "))
		waitLine(t, proctest.Lines(conn, 10), ": connected", 10*time.Second)
		streams = append(streams, conn)
	}
	gauge := func(want int) error {
		m := scrape(t, "http://"+admin+"/metrics")
		if !strings.Contains(m, fmt.Sprintf(`bffgate_http_connections{listener="gateway"} %d`+"\n", want)) {
			return fmt.Errorf("want %d open gateway connections:\n%s", want, grepLines(m, "bffgate_http_connections"))
		}
		return nil
	}
	if err := proctest.Eventually(10*time.Second, 10*time.Millisecond, func() error { return gauge(2) }); err != nil {
		t.Fatal(err)
	}
	// The third slot: a request whose headers never end. A fourth
	// connection then waits.
	half, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { half.Close() })
	fmt.Fprintf(half, "GET /bff/user HTTP/1.1\r\nHost: x\r\n")
	answered := make(chan error, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(g.public + "/bff/user")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case <-answered:
		t.Fatal("a fourth connection was served while two streams and a request held max_connections = 3")
	case <-time.After(500 * time.Millisecond):
	}
	streams[0].Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the waiting connection after a stream closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not served after a stream's peer closed")
	}
	if err := proctest.Eventually(10*time.Second, 10*time.Millisecond, func() error { return gauge(2) }); err != nil {
		t.Fatal(err) // the other stream and the half request
	}
}
