package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// TestReplicasRotatingRefreshTokens: two replicas on one Redis, an IdP
// that rotates refresh tokens (each is single use) and access tokens
// that are due for refresh soon after they are issued, and concurrent
// API calls of one session through both replicas, to several upstreams
// (so that first uses are recorded while tokens are refreshed). The
// session survives: every call succeeds, no refresh token is presented
// twice, and the replicas make one grant per refresh between them.
func TestReplicasRotatingRefreshTokens(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	// The gateway refreshes a token a quarter of its lifetime before it
	// expires (at most refresh_margin): these 2 s tokens are due window
	// after they are issued (expires_in is whole seconds).
	const ttl = 2 * time.Second
	const window = ttl - ttl/4
	op := testop.New(t, testop.Config{AccessTokenTTL: ttl})
	api := newAPI(t)
	const upstreams = 6
	var replicas []*replica
	for range 2 {
		r := newReplica(t, replicaOpts{redisURL: redisSrv.URL(6), op: op, api: api.URL})
		f, err := os.OpenFile(r.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range upstreams {
			fmt.Fprintf(f, "  [[apps.apis]]\n  path = \"/api%d/\"\n  upstream = %q\n", i, api.URL)
		}
		f.Close()
		r.start(t)
		replicas = append(replicas, r)
	}
	op.SetRedirectURL(replicas[0].public + "/bff/callback")
	alice := login(t, op, replicas[0])

	const workers, duration = 8, 4 * window
	deadline := time.Now().Add(duration)
	var (
		mu       sync.Mutex
		failures []string
		calls    int
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				r := replicas[(w+i)%2]
				path := fmt.Sprintf("/api%d/hello", (w+i)%upstreams)
				req, _ := http.NewRequest(http.MethodGet, r.public+path, nil)
				req.Header.Set("X-CSRF", "1")
				resp, err := alice.client.Do(req)
				mu.Lock()
				calls++
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("%s%s: %v", r.listen, path, err))
				case resp.StatusCode != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%s%s: %d", r.listen, path, resp.StatusCode))
				}
				mu.Unlock()
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d API calls failed, first: %q", len(failures), calls, failures[0])
	}
	if n := op.RejectedRefreshCount(); n != 0 {
		t.Errorf("refresh grants rejected by the IdP: %d, want 0 (a rotated-away refresh token was presented)", n)
	}
	// One grant per window between both replicas, plus one for the
	// window the run ends in; two replicas refreshing on their own would
	// make about twice as many.
	t.Logf("%d API calls, %d refresh grants", calls, op.RefreshCount())
	if n, most := op.RefreshCount(), int(duration/window)+1; n < 2 || n > most {
		t.Errorf("refresh grants = %d, want between 2 and %d", n, most)
	}
	for _, r := range replicas {
		if code, body, err := alice.api(r); err != nil || code != http.StatusOK {
			t.Errorf("API through %s after the run: %d %q %v, want 200: the session ended", r.listen, code, body, err)
		}
	}
}
