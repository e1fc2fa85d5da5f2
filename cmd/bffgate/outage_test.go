package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// startStoppable runs the replica in-process until the test ends or stop
// is called (once), and waits until it is ready. stop ends run and waits
// for it to return.
func startStoppable(t *testing.T, a *replica) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bffgate", "-config", a.config}, env(nil), io.Discard, io.Discard) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the gateway did not stop")
		}
	})
	t.Cleanup(stop)
	waitStatus(t, "http://"+a.admin+"/readyz", http.StatusOK)
	return stop
}

// revokedAndLive signs two users in to the replica a, the first then
// signed out by a back-channel logout; the second's API call works.
func revokedAndLive(t *testing.T, op *testop.OP, a *replica) (revoked, live *user) {
	t.Helper()
	op.SetRedirectURL(a.public + "/bff/callback")
	revoked, live = login(t, op, a), login(t, op, a)
	if code, _, err := backchannel(a, logoutToken(op, revoked.sid)); err != nil || code != http.StatusOK {
		t.Fatalf("back-channel logout: %d %v", code, err)
	}
	if code, _, _ := live.api(a); code != http.StatusOK {
		t.Fatalf("live session before the outage: %d", code)
	}
	return revoked, live
}

// TestRedisOutageFailsClosed stops Redis (SIGKILL) during a load of API
// calls, then starts it again on its data. A session revoked before the
// stop is never served; a live one gets 200 or the documented 503 JSON,
// nothing else; /readyz turns false during the outage; everything
// recovers when Redis returns; and stopping the gateway leaves no
// goroutine behind.
func TestRedisOutageFailsClosed(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	srv, err := storetest.StartRedisIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	op := testop.New(t, testop.Config{})
	api := newAPI(t)

	a := newReplica(t, replicaOpts{redisURL: srv.URL(0), op: op, api: api.URL})
	stop := startStoppable(t, a)
	revoked, live := revokedAndLive(t, op, a)

	type tally struct {
		mu    sync.Mutex
		codes map[int]int
		bad   []string
	}
	var revokedT, liveT tally
	revokedT.codes, liveT.codes = map[int]int{}, map[int]int{}
	var readyDown atomic.Bool
	var outage atomic.Bool
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hammer := func(u *user, tl *tally, allowed ...int) {
		for loadCtx.Err() == nil {
			code, body, err := u.api(a)
			tl.mu.Lock()
			switch {
			case err != nil:
				tl.bad = append(tl.bad, "transport error: "+err.Error())
			case code == http.StatusServiceUnavailable:
				var e struct {
					Error string `json:"error"`
				}
				if json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(body, "unavailable") {
					tl.bad = append(tl.bad, "503 without the documented JSON: "+body)
				}
			}
			ok := false
			for _, c := range allowed {
				ok = ok || c == code
			}
			if !ok && err == nil {
				tl.bad = append(tl.bad, http.StatusText(code)+": "+body)
			}
			tl.codes[code]++
			tl.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}
	for range 3 {
		wg.Go(func() { hammer(revoked, &revokedT, http.StatusUnauthorized, http.StatusServiceUnavailable) })
		wg.Go(func() { hammer(live, &liveT, http.StatusOK, http.StatusServiceUnavailable) })
	}
	wg.Go(func() {
		for loadCtx.Err() == nil {
			resp, err := http.Get("http://" + a.admin + "/readyz")
			if err == nil {
				resp.Body.Close()
				if outage.Load() && resp.StatusCode != http.StatusOK {
					readyDown.Store(true)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Each phase lasts until the load has shown what it is for, not for a
	// set time: before the outage, both sessions are answered; during it,
	// the live session gets a 503 and /readyz turns false.
	count := func(tl *tally, code int) int {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		return tl.codes[code]
	}
	if !poll(10*time.Second, func() bool { return count(&liveT, http.StatusOK) > 0 && count(&revokedT, http.StatusUnauthorized) > 0 }) {
		t.Errorf("before the outage: %d 200s for the live session, %d 401s for the revoked one; want some of each",
			count(&liveT, http.StatusOK), count(&revokedT, http.StatusUnauthorized))
	}
	outage.Store(true)
	srv.Stop()
	poll(15*time.Second, func() bool { return count(&liveT, http.StatusServiceUnavailable) > 0 && readyDown.Load() }) // checked below
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	outage.Store(false)
	// Recovery: the live session is served again.
	if err := proctest.Eventually(15*time.Second, 50*time.Millisecond, func() error {
		if code, _, _ := live.api(a); code != http.StatusOK {
			return errors.New("the live session is not served again after Redis returned")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Some load after the recovery: more 200s for the live session.
	served := count(&liveT, http.StatusOK)
	if !poll(10*time.Second, func() bool { return count(&liveT, http.StatusOK) >= served+5 }) {
		t.Errorf("after the recovery: %d more 200s for the live session, want 5", count(&liveT, http.StatusOK)-served)
	}
	stopLoad()
	wg.Wait()
	waitStatus(t, "http://"+a.admin+"/readyz", http.StatusOK)

	for name, tl := range map[string]*tally{"revoked": &revokedT, "live": &liveT} {
		t.Logf("%s session: status counts %v", name, tl.codes)
		for i, b := range tl.bad {
			if i == 5 {
				t.Errorf("%s session: %d more bad answers", name, len(tl.bad)-5)
				break
			}
			t.Errorf("%s session: %s", name, b)
		}
	}
	if revokedT.codes[http.StatusOK] != 0 {
		t.Errorf("the revoked session was served %d times", revokedT.codes[http.StatusOK])
	}
	if liveT.codes[http.StatusServiceUnavailable] == 0 {
		t.Error("no 503 during the outage: was Redis really down?")
	}
	if !readyDown.Load() {
		t.Error("/readyz never turned false during the outage")
	}
	if code, _, _ := revoked.api(a); code != http.StatusUnauthorized {
		t.Errorf("revoked session after the outage: %d, want 401", code)
	}

	// No goroutine of the gateway or of go-redis left once the gateway
	// stops. (Idle HTTP keep-alive connections of the test's clients and
	// servers are not the gateway's.)
	stop()
	wantNoGatewayGoroutines(t)
}

// wantNoGatewayGoroutines waits up to 10 s for the goroutines of a
// stopped gateway (and of go-redis) to end, and fails the test if some
// are left.
func wantNoGatewayGoroutines(t *testing.T) {
	t.Helper()
	if err := proctest.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		if left := gatewayGoroutines(); len(left) != 0 {
			return fmt.Errorf("%d goroutines of the gateway or go-redis left after it stopped:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// gatewayGoroutines returns the stacks of the goroutines running code of
// the gateway's packages or of go-redis, except the caller's.
func gatewayGoroutines() []string {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for i, g := range strings.Split(string(buf[:n]), "\n\n") {
		if i == 0 || strings.Contains(g, "testing.(*M).Run") {
			continue // the caller, and TestMain
		}
		if strings.Contains(g, "github.com/redis/go-redis") ||
			(strings.Contains(g, "github.com/bffgate/bffgate/") && !strings.Contains(g, "bffgate/internal/testop")) {
			out = append(out, g)
		}
	}
	return out
}

// poll calls cond every 10 ms until it holds (true) or d has passed
// (false).
func poll(d time.Duration, cond func() bool) bool {
	return proctest.Eventually(d, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}) == nil
}

var errNotYet = errors.New("not yet")
