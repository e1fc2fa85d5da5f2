package bff

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/proctest"
)

// apiAt points the app's API at hdl.
func apiAt(t *testing.T, hdl http.Handler) func(*AppConfig) {
	t.Helper()
	up := httptest.NewServer(hdl)
	t.Cleanup(up.Close)
	return func(a *AppConfig) { a.APIs = []APIConfig{{Path: "/api/", Upstream: up.URL}} }
}

// frontendAt points the app's frontend at hdl.
func frontendAt(t *testing.T, hdl http.Handler) func(*AppConfig) {
	t.Helper()
	up := httptest.NewServer(hdl)
	t.Cleanup(up.Close)
	return func(a *AppConfig) { a.Frontend = up.URL }
}

// hintsSeen records the 1xx responses a client saw.
type hintsSeen struct {
	mu    sync.Mutex
	codes []int
	links []string
}

func (i *hintsSeen) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.codes = append(i.codes, code)
		i.links = append(i.links, h.Values("Link")...)
		return nil
	}}
}

// TestEarlyHintsKeepFinalStatus: an upstream's 103 Early Hints reach the
// client, and so does the final status after them, in the response and
// in the request metrics.
func TestEarlyHintsKeepFinalStatus(t *testing.T) {
	for _, final := range []int{http.StatusNotFound, http.StatusFound, http.StatusInternalServerError} {
		t.Run(strconv.Itoa(final), func(t *testing.T) {
			h := newHarness(t, harnessOpts{mutate: apiAt(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("Link", "</app.css>; rel=preload; as=style")
				w.WriteHeader(http.StatusEarlyHints)
				if final == http.StatusFound {
					w.Header().Set("Location", "/elsewhere")
				}
				w.Header().Set("X-Final", "yes")
				w.WriteHeader(final)
				io.WriteString(w, "final body")
			}))})
			c := h.login("/")
			var seen hintsSeen
			req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/page", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), seen.trace()))
			req.Header.Set("X-CSRF", "1")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != final {
				t.Errorf("status = %d, want %d", resp.StatusCode, final)
			}
			if got := body(t, resp); got != "final body" {
				t.Errorf("body = %q, want the upstream's", got)
			}
			if resp.Header.Get("X-Final") != "yes" {
				t.Errorf("final headers = %v, want the final response's", resp.Header)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("the final response lost its X-Request-Id")
			}
			seen.mu.Lock()
			if len(seen.codes) != 1 || seen.codes[0] != http.StatusEarlyHints || len(seen.links) != 1 {
				t.Errorf("1xx seen = %v with Link %q, want one 103 with the Link header", seen.codes, seen.links)
			}
			seen.mu.Unlock()
			for code, want := range map[int]float64{final: 1, http.StatusEarlyHints: 0, http.StatusOK: 0} {
				if got := testutil.ToFloat64(h.gw.metrics.requests.WithLabelValues("demo", routeAPI, strconv.Itoa(code))); got != want {
					t.Errorf("requests{code=%d} = %v, want %v", code, got, want)
				}
			}
		})
	}
}

// TestExpectContinueRefused: with Expect: 100-continue, an upstream that
// reads the body (so 100 Continue goes out) and then refuses answers the
// client with its refusal, not 200.
func TestExpectContinueRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: apiAt(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"forbidden"}`)
	}))})
	c := h.login("/")
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/upload", strings.NewReader(`{"big":"payload"}`))
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF", "1")
	var seen hintsSeen
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), seen.trace()))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", resp.StatusCode)
	}
	if got := testutil.ToFloat64(h.gw.metrics.requests.WithLabelValues("demo", routeAPI, "403")); got != 1 {
		t.Errorf("requests{code=403} = %v, want 1", got)
	}
	for _, code := range []string{"100", "200"} {
		if got := testutil.ToFloat64(h.gw.metrics.requests.WithLabelValues("demo", routeAPI, code)); got != 0 {
			t.Errorf("requests{code=%s} = %v, want 0", code, got)
		}
	}
}

// dyingUpstream sends a chunked 200, part of its body, and then cuts the
// connection before the last chunk.
func dyingUpstream(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "the first part of the body\n")
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
}

// TestTruncatedUpstreamAborts: when the upstream dies mid-body, the
// gateway's client sees the abort (HTTP/1.1: unexpected EOF; HTTP/2: a
// stream reset), never a clean, short 200.
func TestTruncatedUpstreamAborts(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: frontendAt(t, dyingUpstream(t))})
	h2 := httptest.NewUnstartedServer(h.gw.Handler())
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)

	tests := []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"HTTP/1.1", h.srv.URL, h.browser(), 1},
		{"HTTP/2", h2.URL, h2.Client(), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(tt.url + "/app/index.html")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != tt.proto {
				t.Fatalf("protocol %s, want HTTP/%d", resp.Proto, tt.proto)
			}
			got, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("body %q read cleanly, want an error (the upstream died mid-body)", got)
			}
			if tt.proto == 1 && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error = %v, want unexpected EOF", err)
			}
			if tt.proto == 2 && !strings.Contains(err.Error(), "stream error") {
				t.Errorf("read error = %v, want a stream reset", err)
			}
		})
	}
	// Each aborted response is counted once, with the status it began
	// with (the handler records it before the abort goes on).
	aborted := h.gw.metrics.requests.WithLabelValues("demo", routeFrontend, "200")
	_ = proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if testutil.ToFloat64(aborted) < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if got := testutil.ToFloat64(aborted); got != 2 {
		t.Errorf("requests{route=frontend,code=200} = %v, want 2 (one per aborted response)", got)
	}
}

// Make sure the hijacking upstream really looks broken to a direct client.
func TestDyingUpstreamDirect(t *testing.T) {
	up := httptest.NewServer(dyingUpstream(t))
	t.Cleanup(up.Close)
	resp, err := http.Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(bufio.NewReader(resp.Body)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("direct read error = %v, want unexpected EOF", err)
	}
}
