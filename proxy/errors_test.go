package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/upstream"
)

func TestUpstreamDown(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	addr := up.Listener.Addr().String()
	up.Close() // nothing listens there any more

	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	rec := serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), validSession())
	wantJSONError(t, rec, http.StatusBadGateway, "bad_gateway")
	host, port, _ := net.SplitHostPort(addr)
	if body := rec.Body.String(); strings.Contains(body, host) || strings.Contains(body, port) {
		t.Errorf("body %q reveals the upstream address %s", body, addr)
	}
}

func TestSlowUpstream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client leaving
		select {
		case <-r.Context().Done(): // the proxy gave up
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(up.Close)
	tcfg := upstream.TransportConfig{ResponseHeaderTimeout: 50 * time.Millisecond}
	watched := upstream.NewProxyTransport(tcfg) // the gateway's: a shared watcher for GETs to plain HTTP
	t.Cleanup(watched.Close)
	timed := upstream.NewTransport(tcfg) // net/http's timer
	t.Cleanup(timed.CloseIdleConnections)
	for name, tr := range map[string]http.RoundTripper{"proxy transport": watched, "net/http timer": timed} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			cfg := Config{Name: "api", Target: mustURL(t, up.URL), IsGatewayCookie: isGatewayCookie, WriteError: writeTestError}
			p, err := New(cfg, tr, staticTokens{token: "at-1"}, &recorder{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(name+" "+method, func(t *testing.T) {
				var body io.Reader // a GET without a body: the watcher's
				if method == http.MethodPost {
					body = strings.NewReader("{}") // net/http's timer, from the end of the upload
				}
				rec := serve(p, httptest.NewRequest(method, "http://app.example/api/", body), validSession())
				wantJSONError(t, rec, http.StatusGatewayTimeout, "upstream_timeout")
			})
		}
	}
}

func TestClientCanceledWritesNothing(t *testing.T) {
	p := newTestProxy(t, "http://127.0.0.1:1", staticTokens{token: "at-1"}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://app.example/api/", nil)
	rec := httptest.NewRecorder()
	p.handleError(rec, req, fmt.Errorf("dial: %w", context.Canceled))
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Errorf("wrote %q with headers %v, want nothing", rec.Body, rec.Header())
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTimeout(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "deadline", err: fmt.Errorf("round trip: %w", context.DeadlineExceeded), want: true},
		{name: "net timeout", err: &net.OpError{Op: "read", Err: timeoutErr{}}, want: true},
		{name: "os deadline", err: os.ErrDeadlineExceeded, want: true},
		{name: "refused", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, want: false},
		{name: "canceled", err: context.Canceled, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isTimeout(tt.err); got != tt.want {
				t.Errorf("isTimeout(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
