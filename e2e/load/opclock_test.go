//go:build loadbench

package load

import (
	"net/http"
	"sync"
	"time"
)

// opClock times the in-process test OP's handler (token endpoint, and
// JWKS or discovery when a login hits them), so that a login's round
// trip can be split into the IdP's time and the gateway's own. Logins
// timed with it run one at a time.
type opClock struct {
	mu    sync.Mutex
	spent time.Duration
	calls int
}

// wrap is testop.Config.Wrap.
func (c *opClock) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		next.ServeHTTP(w, r)
		d := time.Since(t0)
		c.mu.Lock()
		c.spent += d
		c.calls++
		c.mu.Unlock()
	})
}

// take returns the OP time and requests since the last take, and resets.
func (c *opClock) take() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, n := c.spent, c.calls
	c.spent, c.calls = 0, 0
	return d, n
}
