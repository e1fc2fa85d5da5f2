package bff

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawGet sends a request line as written (no client-side cleaning) with
// the cookies of c and the CSRF header, and returns the status.
func (h *harness) rawGet(c *http.Client, target string) int {
	h.t.Helper()
	u, _ := url.Parse(h.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\nX-CSRF: 1\r\nCookie: " + strings.Join(cookies, "; ") + "\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		h.t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Paths that Tomcat, Jetty, IIS or nginx would turn into a parent
// directory, or that carry backslashes or control characters, never
// reach an upstream: neither an API (with the user's bearer) nor the
// frontend.
func TestPathTricksNotForwarded(t *testing.T) {
	var armed atomic.Bool // after the login, which lands on the frontend
	reached := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if armed.Load() {
				t.Errorf("the %s upstream got %s", name, r.RequestURI)
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	api, frontend := reached("API"), reached("frontend")
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.Frontend = frontend.URL
		a.APIs = []APIConfig{{Path: "/api/", Upstream: api.URL}}
	}})
	c := h.login("/")
	armed.Store(true)
	tricks := []string{
		"..", ".", "..;", "..;x=1", ".;", ".;jsessionid=1", "%2e%2e", "%2E%2e", "%2e%2E;", ".%2e", "%2e.", "%2e",
		"%252e%252e", "%25252e%25252e", "%252E%252E%253B", "..%5c", "..%5Cadmin", "..\\", "%2e%2e%5c", "..%255c",
		"..%00", "..%09", "%00", "a%00b", "a%01", "a%1f", "a%7f", "a%7F", "..%0d%0a", "a%250a",
		"...", ".. ", "..%20", ".%20", "..%c0%af", "%c0%ae%c0%ae",
	}
	for _, base := range []string{"/api/", "/app/"} {
		for _, trick := range tricks {
			for _, p := range []string{base + trick + "/admin", base + "x/" + trick, base + "x/" + trick + "/"} {
				if got := h.rawGet(c, p); got != http.StatusBadRequest {
					t.Errorf("GET %s: status %d, want 400", p, got)
				}
			}
		}
	}
	// Neighbours of the tricks are ordinary paths and do reach upstream.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ok.Close)
	h2 := newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.Frontend = ok.URL
		a.APIs = []APIConfig{{Path: "/api/", Upstream: ok.URL}}
	}})
	c2 := h2.login("/")
	for _, p := range []string{"/api/a..b", "/api/..a", "/api/.well-known/x", "/api/a.b;c=d", "/api/%2e%2ea", "/api/100%25", "/api/caf%C3%A9", "/api/a%20b", "/app/.hidden", "/app/v1.2/"} {
		if got := h2.rawGet(c2, p); got != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", p, got)
		}
	}
}
