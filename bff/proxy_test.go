package bff

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

func (h *harness) lastAPIRequest() *http.Request {
	h.t.Helper()
	select {
	case r := <-h.apiRequests:
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatal("the API got no request")
		return nil
	}
}

func TestAPICallCarriesAccessToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/hello?x=1", nil)
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Authorization", "Bearer forged")
	req.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	got := h.lastAPIRequest()
	s := h.sessionOf(c)
	if want := "Bearer " + s.AccessToken; got.Header.Get("Authorization") != want {
		t.Errorf("Authorization = %q, want the session's access token", got.Header.Get("Authorization"))
	}
	if got.URL.Path != "/api/hello" || got.URL.RawQuery != "x=1" {
		t.Errorf("upstream got %s?%s, want /api/hello?x=1", got.URL.Path, got.URL.RawQuery)
	}
	if ck := got.Header.Values("Cookie"); len(ck) != 0 {
		t.Errorf("upstream Cookie = %q, want none (an API authenticates with the bearer)", ck)
	}
}

// TestCookiePolicy: an API gets no cookies unless it names them in
// cookies; the frontend gets every cookie but the gateway's own. The
// IdP's cookies on the same host were reaching the API.
func TestCookiePolicy(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.APIs = append(a.APIs, APIConfig{Path: "/api2/", Upstream: a.APIs[0].Upstream, Cookies: []string{"theme"}})
	}})
	c := h.login("/")
	send := func(path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
		req.Header.Set("X-CSRF", "1")
		req.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		req.AddCookie(&http.Cookie{Name: "_interaction", Value: "idp"})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for path, want := range map[string]string{"/api/x": "", "/api2/x": "theme=dark"} {
		resp := send(path)
		resp.Body.Close()
		if got := h.lastAPIRequest().Header.Values("Cookie"); strings.Join(got, "|") != want {
			t.Errorf("%s: upstream Cookie = %q, want %q", path, got, want)
		}
	}
	resp := send("/index.html")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "cookie=theme=dark; _interaction=idp<") {
		t.Errorf("frontend saw %q, want every cookie but the gateway's", body)
	}
}

func TestAPIRefusals(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	tests := []struct {
		name   string
		client *http.Client
		hdr    []string
	}{
		{"no X-CSRF", c, nil},
		{"no session", h.browser(), []string{"X-CSRF", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.get(tt.client, "/api/hello", tt.hdr...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON (never a redirect)", ct)
			}
			select {
			case r := <-h.apiRequests:
				t.Errorf("the API was called: %s", r.URL)
			default:
			}
		})
	}
}

func TestFrontendGetsNoToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	resp := h.get(c, "/index.html", "Authorization", "Bearer forged")
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b, "spa /index.html auth= cookie=") {
		t.Errorf("frontend answer = %d %q, want the page without Authorization", resp.StatusCode, b)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	s := h.sessionOf(c)
	old := s.AccessToken
	s.TokenExpiry = time.Now().Add(5 * time.Second) // inside the refresh leeway
	if _, _, err := h.mgr.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
		session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: s.TokenExpiry}); err != nil {
		t.Fatal(err)
	}
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	got := h.lastAPIRequest().Header.Get("Authorization")
	if got == "Bearer "+old || h.op.RefreshCount() != 1 {
		t.Errorf("token not refreshed: refreshes = %d, same token = %v", h.op.RefreshCount(), got == "Bearer "+old)
	}
	if now := h.sessionOf(c); "Bearer "+now.AccessToken != got {
		t.Errorf("the refreshed token was not stored")
	}
}

func TestRefreshFailureEndsSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	s := h.sessionOf(c)
	s.TokenExpiry = time.Now().Add(-time.Minute)
	if _, _, err := h.mgr.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
		session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: s.TokenExpiry}); err != nil {
		t.Fatal(err)
	}
	h.op.FailRefresh(true)
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API status = %d, want 401", resp.StatusCode)
	}
	if resp := h.get(c, "/bff/user", "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/bff/user after failed refresh = %d, want 401", resp.StatusCode)
	}
}

func TestDotSegmentsRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	for _, p := range []string{"/api/../admin", "/api/./x", "/x/.."} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/", nil)
		req.URL.Opaque = p // sent as is, not cleaned by the client
		req.Header.Set("X-CSRF", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, resp.StatusCode)
		}
	}
	if resp := h.get(c, "/api/.well-formed/x", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
		t.Errorf("a segment starting with a dot: %d, want 200", resp.StatusCode)
	}
}

func TestProxiedBodyCap(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) { c.MaxBodyBytes = 1024 }})
	c := h.login("/")
	for _, tt := range []struct {
		size int
		want int
	}{{512, http.StatusOK}, {4096, http.StatusRequestEntityTooLarge}} {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/upload", strings.NewReader(strings.Repeat("x", tt.size)))
		req.Header.Set("X-CSRF", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d-byte body: status %d, want %d", tt.size, resp.StatusCode, tt.want)
		}
	}
}
