package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// clusterKeys are the [session] keys naming Cluster c.
func clusterKeys(c *storetest.RedisCluster) string {
	return fmt.Sprintf("redis_addrs = [%s]", `"`+strings.Join(c.Addrs, `", "`)+`"`)
}

// TestReplicasShareLogoutCluster is TestReplicasShareLogout on a 3-master
// Redis Cluster: the back-channel logout (a revocation by sid) received by
// one replica ends the session on the other.
func TestReplicasShareLogoutCluster(t *testing.T) {
	replicasShareLogout(t, replicaOpts{redis: clusterKeys(storetest.SharedCluster(t))})
}

// TestRedisClusterOutageFailsClosed kills the Cluster master that holds
// the gateway's slot during a load of API calls, then starts it again on
// its data: a session revoked before is never served, a live one gets 200
// or 503 and nothing else, /readyz turns false (a PING of another master
// would not notice), everything recovers, and stopping the gateway leaves
// no goroutine behind.
func TestRedisClusterOutageFailsClosed(t *testing.T) {
	storetest.SharedCluster(t) // skips without the binaries, like the others
	c, err := storetest.StartRedisCluster(3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	op := testop.New(t, testop.Config{})
	api := newAPI(t)
	a := newReplica(t, replicaOpts{redis: clusterKeys(c), op: op, api: api.URL})
	stop := startStoppable(t, a)
	revoked, live := revokedAndLive(t, op, a)
	node, err := c.NodeOf(t.Context(), "{bffgate}:")
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		codes     = map[string]map[int]int{"revoked": {}, "live": {}}
		bad       []string
		readyDown bool
		outage    bool
	)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hammer := func(name string, u *user, allowed ...int) {
		for loadCtx.Err() == nil {
			code, body, err := u.api(a)
			mu.Lock()
			switch {
			case err != nil:
				bad = append(bad, name+": transport error: "+err.Error())
			case code == http.StatusServiceUnavailable && !strings.Contains(body, "unavailable"):
				bad = append(bad, name+": 503 without the documented JSON: "+body)
			case !containsInt(allowed, code):
				bad = append(bad, fmt.Sprintf("%s: %d %s", name, code, body))
			}
			codes[name][code]++
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}
	for range 2 {
		wg.Go(func() { hammer("revoked", revoked, http.StatusUnauthorized, http.StatusServiceUnavailable) })
		wg.Go(func() { hammer("live", live, http.StatusOK, http.StatusServiceUnavailable) })
	}
	wg.Go(func() {
		for loadCtx.Err() == nil {
			resp, err := http.Get("http://" + a.admin + "/readyz")
			if err == nil {
				resp.Body.Close()
				mu.Lock()
				if outage && resp.StatusCode != http.StatusOK {
					readyDown = true
				}
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		if !poll(d, cond) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}

	mu.Lock()
	outage = true
	mu.Unlock()
	c.Kill(node)
	waitFor("503s and /readyz false with the slot's master down", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return readyDown && codes["live"][http.StatusServiceUnavailable] > 0
	})
	if err := c.Restart(node); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitOK(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	outage = false
	mu.Unlock()
	waitFor("the live session served again", 20*time.Second, func() bool {
		code, _, _ := live.api(a)
		return code == http.StatusOK
	})
	stopLoad()
	wg.Wait()
	waitStatus(t, "http://"+a.admin+"/readyz", http.StatusOK)

	t.Logf("status counts %v", codes)
	for i, b := range bad {
		if i == 5 {
			t.Errorf("%d more bad answers", len(bad)-5)
			break
		}
		t.Error(b)
	}
	if n := codes["revoked"][http.StatusOK]; n != 0 {
		t.Errorf("the revoked session was served %d times", n)
	}
	if code, _, _ := revoked.api(a); code != http.StatusUnauthorized {
		t.Errorf("revoked session after the outage: %d, want 401", code)
	}

	stop()
	wantNoGatewayGoroutines(t)
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
