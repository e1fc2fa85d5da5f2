package bff

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// BenchmarkAPIRequest measures the hot path of an authenticated API call
// (cookie decode, session lookup, CSRF check, token attach, proxy to the
// upstream) beside the fair floor, a bare httputil.ReverseProxy that
// injects a header and sets X-Forwarded-* (as e2e/load's bareproxy does),
// both sent the same requests (the browser's cookie and X-CSRF) against
// the same upstream, in the same run.
func BenchmarkAPIRequest(b *testing.B) {
	target, transport := benchUpstream(b)
	bare := bareProxy(target, transport)
	gw, cookie := benchGateway(b, target, transport, nil)
	b.Run("bare", func(b *testing.B) { benchAPI(b, bare, cookie, 1) })
	b.Run("bffgate", func(b *testing.B) { benchAPI(b, gw, cookie, 1) })
}

// benchUpstream starts a quiet API upstream for the benchmarks and
// returns its URL and a transport to it.
func benchUpstream(b *testing.B) (*url.URL, http.RoundTripper) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(upstream.Close)
	target, _ := url.Parse(upstream.URL)
	return target, &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
}

// benchAPI sends GET /api/hello to hdl from parallelism×GOMAXPROCS
// goroutines, with the session cookie and X-CSRF when cookie is set.
func benchAPI(b *testing.B, hdl http.Handler, cookie string, parallelism int) {
	b.SetParallelism(parallelism)
	benchParallel(b, hdl, "req/s", func() *http.Request {
		req := httptest.NewRequest(http.MethodGet, "/api/hello", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
			req.Header.Set("X-CSRF", "1")
		}
		return req
	})
}

// benchParallel sends the requests newReq makes to hdl in parallel, each
// expecting 200, and reports their rate as unit.
func benchParallel(b *testing.B, hdl http.Handler, unit string, newReq func() *http.Request) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			hdl.ServeHTTP(w, newReq())
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// noReplay accepts every jti, so that the benchmark can reuse a pool of
// signed tokens (signing RS256 is far slower than verifying).
type noReplay struct{}

func (noReplay) Seen(context.Context, string, time.Duration) (bool, error) { return false, nil }

func (noReplay) Forget(context.Context, string) error { return nil }

// BenchmarkBackchannel measures valid RS256 back-channel logouts through
// the handler: form parsing, full token validation, revocation by sid and
// the tombstone. The first use of each pooled token ends a stored session.
func BenchmarkBackchannel(b *testing.B) {
	h := newHarness(b, harnessOpts{replay: noReplay{}, server: func(s *ServerConfig) { s.RateLimits.Backchannel.Off = true }})
	const pool = 2048
	tokens := make([]string, pool)
	ctx := context.Background()
	now := time.Now()
	for i := range tokens {
		sid := fmt.Sprintf("sid-%d", i)
		tokens[i] = h.logoutToken(func(m map[string]any) { m["sid"] = sid }, testop.SignOpts{})
		if err := h.mgr.Create(ctx, &session.Session{ID: session.NewID(), App: "demo", Issuer: h.op.URL, Subject: "alice", SID: sid, CreatedAt: now, LastSeen: now}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	benchParallel(b, h.gw.Handler(), "logouts/s", func() *http.Request {
		tok := tokens[(next.Add(1)-1)%pool]
		req := httptest.NewRequest(http.MethodPost, "/bff/backchannel-logout", strings.NewReader("logout_token="+tok))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	})
}

// bareProxy is the floor for any Go proxy: httputil.ReverseProxy that
// sets X-Forwarded-* and injects a header, with a pool of copy buffers as
// the gateway has (e2e/load's bareproxy).
func bareProxy(target *url.URL, transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set("Authorization", "Bearer token")
		},
		Transport:  transport,
		BufferPool: benchBuffers{},
	}
}

var benchBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// benchBuffers is the same pool as the gateway's (proxy.bufferPool).
type benchBuffers struct{}

func (benchBuffers) Get() []byte { return benchBufferPool.Get().(*[32 << 10]byte)[:] }

func (benchBuffers) Put(b []byte) {
	if cap(b) >= 32<<10 {
		benchBufferPool.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}
