package bff

import (
	"encoding/json"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoginThenUser(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.op.SetUser("alice", map[string]any{"name": "Alice"})
	c := h.browser()

	resp := h.get(c, "/bff/login?returnUrl=%2Fdashboard%3Ftab%3D1")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login status = %d, want 302", resp.StatusCode)
	}
	auth, _ := resp.Location()
	q := auth.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == "" {
			t.Errorf("authorize request lacks %s", k)
		}
	}
	if got := q.Get("code_challenge_method"); got != "S256" {
		t.Errorf("code_challenge_method = %q, want S256", got)
	}
	_, visited := h.follow(c, auth.String())
	if last := visited[len(visited)-1]; last != h.srv.URL+"/dashboard?tab=1" {
		t.Errorf("login landed on %s, want the returnUrl", last)
	}

	resp = h.get(c, "/bff/user", "X-CSRF", "1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/bff/user = %d, want 200", resp.StatusCode)
	}
	var user map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&user); err != nil {
		t.Fatal(err)
	}
	if user["sub"] != "alice" || user["name"] != "Alice" {
		t.Errorf("user = %v, want sub alice and name Alice", user)
	}
	if _, ok := user["sid"]; ok {
		t.Errorf("user has the IdP's sid %v, want it left out", user["sid"])
	}
	if got, want := user["logout_url"], "/bff/logout?sid="+url.QueryEscape(h.gw.logout.Handle(h.sessionOf(c))); got != want {
		t.Errorf("logout_url = %v, want %s", got, want)
	}
	if n, _ := user["session_expires_in"].(float64); n < 1700 || n > 1800 {
		t.Errorf("session_expires_in = %v, want about the 30m idle timeout", user["session_expires_in"])
	}
	if user["session_state"] == "" {
		t.Errorf("session_state missing")
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.browser()
	resp := h.get(c, "/bff/login")
	auth, _ := resp.Location()
	resp = h.get(c, auth.String()) // the OP's redirect to the callback
	cb, _ := resp.Location()
	resp = h.get(c, cb.String())
	var sessionCookie *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == "bffgate-demo" {
			sessionCookie = k
		}
	}
	if sessionCookie == nil {
		t.Fatalf("callback set no bffgate-demo cookie; got %v", resp.Cookies())
	}
	if !sessionCookie.HttpOnly || sessionCookie.SameSite != http.SameSiteLaxMode || sessionCookie.Path != "/" {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Lax, Path=/", sessionCookie)
	}
	if len(sessionCookie.Value) < 40 {
		t.Errorf("cookie value %q is too short to be sealed", sessionCookie.Value)
	}
}

func TestUserNeedsCSRFAndSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	anon := h.browser()
	tests := []struct {
		name   string
		client *http.Client
		hdr    []string
		want   int
	}{
		{"session without X-CSRF", c, nil, http.StatusUnauthorized},
		{"session with X-CSRF: 0", c, []string{"X-CSRF", "0"}, http.StatusUnauthorized},
		{"no session", anon, []string{"X-CSRF", "1"}, http.StatusUnauthorized},
		{"session and X-CSRF", c, []string{"X-CSRF", "1"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.get(tt.client, "/bff/user", tt.hdr...)
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
		})
	}
}

func TestReturnURLStaysLocal(t *testing.T) {
	tests := []struct {
		returnURL string
		want      string
	}{
		{"/ok?x=1", "/ok?x=1"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"/\t/evil.example", "/"},
		{"/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"},
		{"javascript:alert(1)", "/"},
		{"", "/"},
	}
	h := newHarness(t, harnessOpts{})
	for _, tt := range tests {
		t.Run(tt.returnURL, func(t *testing.T) {
			c := h.browser()
			_, visited := h.follow(c, "/bff/login?returnUrl="+url.QueryEscape(tt.returnURL))
			if got := visited[len(visited)-1]; got != h.srv.URL+tt.want {
				t.Errorf("landed on %q, want %q", got, h.srv.URL+tt.want)
			}
		})
	}
}

func TestCallbackErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	t.Run("idp error", func(t *testing.T) {
		c := h.browser()
		h.op.FailNextAuthorize("access_denied")
		resp, _ := h.follow(c, "/bff/login")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", resp.StatusCode)
		}
		if b := body(t, resp); !strings.Contains(b, "access_denied") {
			t.Errorf("page does not name the IdP's error: %s", b)
		}
	})
	for _, q := range []string{"", "?state=unknown&code=x", "?code=x", "?state=&error=access_denied"} {
		t.Run("callback"+q, func(t *testing.T) {
			resp := h.get(h.browser(), "/bff/callback"+q)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want an HTML page", ct)
			}
		})
	}
	t.Run("replayed callback", func(t *testing.T) {
		c := h.browser()
		resp := h.get(c, "/bff/login")
		auth, _ := resp.Location()
		resp = h.get(c, auth.String())
		cb, _ := resp.Location()
		if resp = h.get(c, cb.String()); resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback = %d, want 302", resp.StatusCode)
		}
		if resp = h.get(c, cb.String()); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback = %d, want 400", resp.StatusCode)
		}
	})
}

func TestLoginsInTwoTabs(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.browser()
	// Start two logins in the same browser, then finish them in reverse.
	var callbacks []string
	for range 2 {
		resp := h.get(c, "/bff/login")
		auth, _ := resp.Location()
		resp = h.get(c, auth.String())
		cb, _ := resp.Location()
		callbacks = append(callbacks, cb.String())
	}
	for i := len(callbacks) - 1; i >= 0; i-- {
		if resp := h.get(c, callbacks[i]); resp.StatusCode != http.StatusFound {
			t.Errorf("callback of tab %d = %d, want 302", i, resp.StatusCode)
		}
	}
}

func TestConcurrentLogins(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			w := h.worker()
			c := w.login("/")
			if resp := w.get(c, "/bff/user", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
				t.Errorf("user after login = %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
}

// worker returns a copy of h for a goroutine the test started: a failure
// the harness would report with Fatal is reported with Error (safe from
// any goroutine), and ends only that goroutine (t.FailNow must not be
// called outside the test's goroutine).
func (h *harness) worker() *harness {
	w := *h
	w.t = workerTB{h.t}
	return &w
}

// workerTB is a testing.TB for a worker goroutine (see harness.worker).
type workerTB struct{ testing.TB }

func (w workerTB) Fatal(args ...any) {
	w.TB.Helper()
	w.TB.Error(args...)
	runtime.Goexit()
}

func (w workerTB) Fatalf(format string, args ...any) {
	w.TB.Helper()
	w.TB.Errorf(format, args...)
	runtime.Goexit()
}

func (w workerTB) FailNow() {
	w.TB.Fail()
	runtime.Goexit()
}
