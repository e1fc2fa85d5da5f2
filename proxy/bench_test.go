package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"

	"github.com/bffgate/bffgate/upstream"
)

// BenchmarkProxy compares a bare httputil.ReverseProxy (the fair floor of
// e2e/load's bareproxy: SetXForwarded and a bearer) with the gateway's
// Proxy (a session, valid token, gateway cookie to strip) against the
// same upstream and transport.
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"ok":true}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer up.Close()
	target := mustURL(b, up.URL)
	tr := upstream.NewTransport(upstream.TransportConfig{MaxIdleConnsPerHost: 256})
	defer tr.CloseIdleConnections()

	bare := &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: bufferPool{}, // as the gateway's, so that the floor is fair
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set("Authorization", "Bearer at-1")
		},
	}
	s := validSession()
	s.Upstreams = []string{"api"} // usage already recorded
	r := NewRefresher(RefresherConfig{}, newSessions(b, s), nil)
	gw, err := New(Config{Name: "api", Target: target, IsGatewayCookie: isGatewayCookie, Cookies: CookiePolicy{All: true}, WriteError: writeTestError}, tr, r, &recorder{}, nil)
	if err != nil {
		b.Fatal(err)
	}

	for _, bc := range []struct {
		name string
		h    func(http.ResponseWriter, *http.Request)
	}{
		{"bare", bare.ServeHTTP},
		{"bffgate", func(w http.ResponseWriter, r *http.Request) { gw.ServeSession(w, r, s) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "http://app.example/api/items", nil)
					req.Header.Set("Cookie", "bffgate=opaque; theme=dark")
					rec := httptest.NewRecorder()
					bc.h(rec, req)
					if rec.Code != http.StatusOK {
						b.Errorf("status = %d, want 200", rec.Code)
						return
					}
				}
			})
		})
	}
}
