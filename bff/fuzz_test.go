package bff

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// FuzzBackchannelEndpoint throws arbitrary bodies and content types at
// POST /bff/backchannel-logout: it must never panic, and must answer only
// 200 (a valid token), 400 or 413, always with no-store.
func FuzzBackchannelEndpoint(f *testing.F) {
	h := newHarness(f, harnessOpts{server: func(c *ServerConfig) { c.RateLimits.Backchannel.Off = true }})
	valid := h.logoutToken(nil, testop.SignOpts{})
	f.Add("application/x-www-form-urlencoded", url.Values{"logout_token": {valid}}.Encode())
	f.Add("application/x-www-form-urlencoded", "logout_token="+valid[:len(valid)/2])
	f.Add("application/x-www-form-urlencoded; charset=utf-8", "logout_token=a.b.c&x=%zz")
	f.Add("application/x-www-form-urlencoded", "logout_token=&logout_token=x")
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"logout_token\"\r\n\r\nabc\r\n--x--")
	f.Add("text/plain", "")
	f.Add("application/x-www-form-urlencoded", "logout_token=eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	handler := h.gw.Handler()
	f.Fuzz(func(t *testing.T, contentType, body string) {
		req := httptest.NewRequest(http.MethodPost, "/bff/backchannel-logout", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q %q", w.Code, contentType, body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("no Cache-Control: no-store on %d", w.Code)
		}
		if w.Code != http.StatusOK && strings.Contains(w.Body.String(), "eyJ") {
			t.Fatalf("the error echoes the token: %s", w.Body.String())
		}
	})
}
