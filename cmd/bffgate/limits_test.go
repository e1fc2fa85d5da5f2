package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestBodyDeadlineLiftedAtEOF: once a body is read to its end, a slow
// answer (a slow upstream, a streamed response) is not cut by the body's
// read deadline, nor is the request's context cancelled.
func TestBodyDeadlineLiftedAtEOF(t *testing.T) {
	const idle = 300 * time.Millisecond
	srv := httptest.NewServer(limitBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(4 * idle): // a slow upstream
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "done")
	}), fixedBodyLimits(idle, 1024), prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "done" {
		t.Errorf("answer after the body: %q %v, want done", b, err)
	}
}

// fixedBodyLimits are limitBodies's limits, unchanging.
func fixedBodyLimits(idle time.Duration, minRate int) *atomic.Pointer[bodyLimits] {
	var p atomic.Pointer[bodyLimits]
	p.Store(&bodyLimits{idle: idle, minRate: minRate})
	return &p
}

// TestSlowBodyOverHTTP2: over HTTP/2 the body deadline ends the stream
// whose body stalls, and the connection's other streams go on.
func TestSlowBodyOverHTTP2(t *testing.T) {
	g := startTLSGateway(t, "h2", `body_read_timeout = "1s"`)
	cert, listen := g.cert, g.listen
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, "https://"+listen+"/bff/backchannel-logout", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a stalled HTTP/2 body was still read after 10s: %v", err)
		}
	} else {
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode < 400 {
			t.Errorf("stalled body: %s %d, want HTTP/2 and an error status", resp.Proto, resp.StatusCode)
		}
	}
	resp, err = client.Get("https://" + listen + "/bff/user")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("next request: %d, want 401", resp.StatusCode)
	}
}
