package bff

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/labstack/echo/v4"
)

// TestRateLimit: past its burst, a client gets 429 with Retry-After. The
// bucket refills at one token per 100 s here, so no refill can happen
// between the requests however slowly they run.
func TestRateLimit(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(c *ServerConfig) {
		c.RateLimits.Frontchannel = Limit{Rate: 0.01, Burst: 2}
	}})
	c := h.browser()
	for i := range 2 {
		if resp := h.get(c, "/bff/frontchannel-logout", "Sec-Fetch-Dest", "iframe"); resp.StatusCode != http.StatusOK {
			t.Errorf("request %d within the burst: %d, want 200", i+1, resp.StatusCode)
		}
	}
	last := h.get(c, "/bff/frontchannel-logout", "Sec-Fetch-Dest", "iframe")
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") != "100" {
		t.Errorf("third request: %d Retry-After %q, want 429 with Retry-After 100", last.StatusCode, last.Header.Get("Retry-After"))
	}
}

// TestRateLimitRecovers: the bucket refills at its rate (20/s: a token
// every 50 ms), on synctest's clock.
func TestRateLimitRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := echo.New()
		e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, rateLimit(Limit{Rate: 20, Burst: 2}))
		allowed := func() bool {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			return rec.Code == http.StatusOK
		}
		steps := []struct {
			wait time.Duration
			want []bool
		}{
			{0, []bool{true, true, false}},                      // the burst
			{49 * time.Millisecond, []bool{false}},              // not a whole token yet
			{time.Millisecond, []bool{true, false}},             // one token at 50 ms
			{100 * time.Millisecond, []bool{true, true, false}}, // two more, no more than the burst
			{time.Second, []bool{true, true, false}},            // the burst caps the refill
		}
		for i, st := range steps {
			time.Sleep(st.wait)
			for j, want := range st.want {
				if got := allowed(); got != want {
					t.Errorf("step %d (after %v), request %d: allowed %v, want %v", i, st.wait, j+1, got, want)
				}
			}
		}
	})
}
