package bff

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

// TestOneErrorShape: every JSON error, whoever answers it (the error
// boundary, the proxy, the admin API), is {"error", "error_description",
// "request_id"} with the request id of the X-Request-ID header.
func TestOneErrorShape(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens there any more
	h := newHarness(t, harnessOpts{
		mutate: func(a *AppConfig) { a.APIs = append(a.APIs, APIConfig{Path: "/dead/", Upstream: dead.URL}) },
		server: func(c *ServerConfig) { c.AdminListen = "127.0.0.1:0"; c.AdminToken = adminToken },
	})
	admin := httptest.NewServer(h.gw.AdminHandler())
	t.Cleanup(admin.Close)
	c := h.login("/")
	expired := h.login("/")
	s := h.sessionOf(expired)
	if _, _, err := h.mgr.ReplaceTokens(context.Background(), s.ID, s.RefreshToken,
		session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.op.FailRefresh(true)

	tests := []struct {
		name   string
		client *http.Client
		url    string
		status int
		code   string
	}{
		{"boundary 401", h.browser(), h.srv.URL + "/api/x", http.StatusUnauthorized, "unauthorized"},
		{"boundary 404", c, h.srv.URL + "/bff/nothing", http.StatusNotFound, "not_found"},
		{"proxy 401", expired, h.srv.URL + "/api/x", http.StatusUnauthorized, "unauthorized"},
		{"proxy 502", c, h.srv.URL + "/dead/x", http.StatusBadGateway, "bad_gateway"},
		{"admin 401", http.DefaultClient, admin.URL + "/admin/sessions?sub=alice", http.StatusUnauthorized, "unauthorized"},
		{"admin 404", http.DefaultClient, admin.URL + "/nothing", http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.get(tt.client, tt.url, "X-CSRF", "1")
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			keys := slices.Sorted(maps.Keys(got))
			if !slices.Equal(keys, []string{"error", "error_description", "request_id"}) {
				t.Errorf("body keys = %v, want error, error_description, request_id (body %v)", keys, got)
			}
			if got["error"] != tt.code || got["error_description"] == "" {
				t.Errorf("body = %v, want error %q with a description", got, tt.code)
			}
			if rid := resp.Header.Get("X-Request-Id"); rid == "" || got["request_id"] != rid {
				t.Errorf("request_id = %v, X-Request-Id = %q, want the same non-empty id", got["request_id"], rid)
			}
		})
	}
}
