package bff

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// gatewayCookieBytes sums name=value of every gateway cookie the jar of
// c holds for the gateway, over all the paths the gateway scopes them to.
func (h *harness) gatewayCookieBytes(c *http.Client) (total int, names []string) {
	h.t.Helper()
	seen := map[string]bool{}
	for _, p := range []string{"/", "/bff/callback", "/bff/login", "/bff/signed-out", "/bff/logout"} {
		u, _ := url.Parse(h.srv.URL + p)
		for _, ck := range c.Jar.Cookies(u) {
			if !strings.Contains(ck.Name, "bffgate-") || seen[ck.Name] {
				continue
			}
			seen[ck.Name] = true
			names = append(names, ck.Name)
			total += len(ck.Name) + 1 + len(ck.Value)
		}
	}
	return total, names
}

// startLogin calls /bff/login and returns the IdP authorize URL it
// redirects to; the login finishes later with h.follow(c, thatURL).
func (h *harness) startLogin(c *http.Client, returnURL string) string {
	h.t.Helper()
	resp := h.get(c, "/bff/login?returnUrl="+url.QueryEscape(returnURL))
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("/bff/login: status %d, want 302: %s", resp.StatusCode, body(h.t, resp))
	}
	return resp.Header.Get("Location")
}

// finishLogin follows an authorize URL through the OP and the callback
// and returns where the browser ended and the last status.
func (h *harness) finishLogin(c *http.Client, authURL string) (string, int) {
	h.t.Helper()
	resp, visited := h.follow(c, authURL)
	return visited[len(visited)-1], resp.StatusCode
}

func noLoginLimit(s *ServerConfig) { s.RateLimits.Login.Off = true }

// A page that makes the browser call /bff/login again and again must not
// grow the gateway's cookies without bound (a "cookie bomb" answers 431
// on every page of the host), and the last few logins still complete.
func TestLoginCookieBomb(t *testing.T) {
	h := newHarness(t, harnessOpts{server: noLoginLimit})
	c := h.browser()
	long := "/" + strings.Repeat("r", maxReturnURLBytes-1)
	var authURLs []string
	for range 100 {
		authURLs = append(authURLs, h.startLogin(c, long))
	}
	if total, names := h.gatewayCookieBytes(c); total > 8<<10 {
		t.Fatalf("gateway cookies after 100 logins: %d bytes in %d cookies, want at most 8 KiB", total, len(names))
	}
	u, _ := url.Parse(h.srv.URL + "/bff/callback")
	for _, ck := range c.Jar.Cookies(u) {
		if n := len(ck.Name) + 1 + len(ck.Value); n >= 1<<10 {
			t.Errorf("cookie %s: %d bytes, want under 1 KiB", ck.Name, n)
		}
	}
	// The oldest attempts were dropped; the newest ones still complete.
	if last, status := h.finishLogin(c, authURLs[len(authURLs)-1-maxLoginAttempts]); status != http.StatusBadRequest {
		t.Errorf("login %d attempts back ended at %s with %d, want 400 (dropped)", maxLoginAttempts+1, last, status)
	}
	for i := len(authURLs) - maxLoginAttempts; i < len(authURLs); i++ {
		last, status := h.finishLogin(c, authURLs[i])
		if want := h.srv.URL + long; last != want || status != http.StatusOK {
			t.Errorf("login %d of 100 ended at %s with %d, want %s", i+1, last, status, want)
		}
	}
	if !h.signedIn(c) {
		t.Error("not signed in after the last logins")
	}
	if total, _ := h.gatewayCookieBytes(c); total > 8<<10 {
		t.Errorf("gateway cookies after the logins: %d bytes, want at most 8 KiB", total)
	}
}

// A login left at the IdP in one tab still completes after another tab
// signed in.
func TestLoginSecondTab(t *testing.T) {
	h := newHarness(t, harnessOpts{server: noLoginLimit})
	c := h.browser()
	tab1 := h.startLogin(c, "/one")
	tab2 := h.startLogin(c, "/two")
	if last, status := h.finishLogin(c, tab2); last != h.srv.URL+"/two" || status != http.StatusOK {
		t.Fatalf("tab 2 ended at %s with %d, want /two", last, status)
	}
	if last, status := h.finishLogin(c, tab1); last != h.srv.URL+"/one" || status != http.StatusOK {
		t.Fatalf("tab 1 ended at %s with %d, want /one", last, status)
	}
	// Single use: the same response again is refused.
	if _, status := h.finishLogin(c, tab1); status != http.StatusBadRequest {
		t.Errorf("tab 1 replayed: %d, want 400", status)
	}
}

// A returnUrl of any length gets a redirect or a 400, never a 5xx.
func TestLoginReturnURLLength(t *testing.T) {
	h := newHarness(t, harnessOpts{server: noLoginLimit})
	for _, n := range []int{0, 1, 100, maxReturnURLBytes - 1, maxReturnURLBytes, maxReturnURLBytes + 1, 1024, 2047, 2048, 4096, 8192, 16 << 10, 70 << 10} {
		want := http.StatusFound
		if n > maxReturnURLBytes {
			want = http.StatusBadRequest
		}
		// Plain letters, and "<" which JSON and cookie encodings blow up.
		for _, ch := range []string{"a", "<"} {
			t.Run(ch+strconv.Itoa(n), func(t *testing.T) {
				ret := ""
				if n > 0 {
					ret = "/" + strings.Repeat(ch, n-1)
				}
				resp := h.get(h.browser(), "/bff/login?returnUrl="+url.QueryEscape(ret))
				if resp.StatusCode != want {
					t.Errorf("returnUrl of %d bytes: status %d, want %d", n, resp.StatusCode, want)
				}
			})
		}
	}
}

// A callback state longer than any the gateway issues is refused early.
func TestCallbackStateLength(t *testing.T) {
	h := newHarness(t, harnessOpts{server: noLoginLimit})
	for _, n := range []int{maxStateBytes + 1, 4096, 70 << 10} {
		resp := h.get(h.browser(), "/bff/callback?code=x&state="+strings.Repeat("s", n))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("state of %d bytes: status %d, want 400", n, resp.StatusCode)
		}
	}
}
