package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
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

// TestEventStreamsOverTLS: over TLS an HTTP/1.1 stream is parked too (its
// peer's close found through crypto/tls and the capped listener), and an
// HTTP/2 stream is served by its handler; both end when the peer goes.
func TestEventStreamsOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	cert := writeCert(t, certFile, keyFile, "gw", time.Now().Add(-time.Minute))
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	op.SetRedirectURL("https://" + listen + "/bff/callback")
	startRun(t, gatewayConfig(t, op, "https", listen, admin, fmt.Sprintf("tls_cert = %q\ntls_key = %q", certFile, keyFile)), admin, io.Discard)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	streams := func(want int) error {
		m := scrape(t, "http://"+admin+"/metrics")
		if !strings.Contains(m, fmt.Sprintf("bffgate_event_streams %d\n", want)) {
			return fmt.Errorf("want %d streams:\n%s", want, grepLines(m, "bffgate_event_streams"))
		}
		return nil
	}
	for _, proto := range []int{1, 2} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: proto == 2}
		if proto == 1 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: tr}
		resp, err := c.Get("https://" + listen + "/bff/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = c.Get("https://" + listen + "/bff/events")
		if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != proto {
			t.Fatalf("HTTP/%d stream: %v %v", proto, resp, err)
		}
		// Parked: the gateway's own head, delimited by the close.
		if parked := resp.Close && len(resp.TransferEncoding) == 0; parked != (proto == 1) {
			t.Errorf("HTTP/%d stream: Connection: close %v, transfer-encoding %v; want the parked head only on HTTP/1.1", proto, resp.Close, resp.TransferEncoding)
		}
		waitLine(t, proctest.Lines(resp.Body, 10), ": connected", 10*time.Second)
		if err := streams(1); err != nil {
			t.Fatalf("HTTP/%d: %v", proto, err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if err := proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error { return streams(0) }); err != nil {
			t.Fatalf("HTTP/%d stream after its peer went: %v", proto, err)
		}
	}
}
