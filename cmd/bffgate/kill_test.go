package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// downstreamApp is a downstream back-channel logout endpoint that answers
// 503 until healthy, and records every jti it sees and those it accepted.
type downstreamApp struct {
	healthy atomic.Bool
	mu      sync.Mutex
	seen    map[string]int // jti → requests
	ok      map[string]bool
}

func (d *downstreamApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	jti := jtiOf(r.PostForm.Get("logout_token"))
	d.mu.Lock()
	d.seen[jti]++
	healthy := d.healthy.Load()
	if healthy {
		d.ok[jti] = true
	}
	d.mu.Unlock()
	if !healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

// retried reports whether some jti came more than once.
func (d *downstreamApp) retried() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.seen {
		if n > 1 {
			return true
		}
	}
	return false
}

func (d *downstreamApp) counts() (seen, ok int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen), len(d.ok)
}

// jtiOf reads the jti of a JWT without verifying it.
func jtiOf(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "malformed"
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		JTI string `json:"jti"`
	}
	json.Unmarshal(b, &c)
	return c.JTI
}

// TestKilledReplicaNotificationsDelivered runs replica B as a process and
// replica A in this one, sharing Redis. Users sign in and are logged out
// through B, whose downstream app answers 503 for a while, so B's
// notifications wait in flight. B is killed (SIGKILL); A claims what B
// left and delivers every notification, each with the jti it was queued
// with.
func TestKilledReplicaNotificationsDelivered(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "bffgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const users = 20
	op := testop.New(t, testop.Config{})
	api := newAPI(t)
	down := &downstreamApp{seen: map[string]int{}, ok: map[string]bool{}}
	ds := httptest.NewServer(down)
	defer ds.Close()
	notifier := `base_delay = "100ms"
max_delay = "300ms"
max_attempts = 1000
claim_idle = "1s"`
	opts := replicaOpts{redisURL: redisSrv.URL(2), op: op, api: api.URL, downstream: ds.URL + "/logout", notifier: notifier + "\nconcurrency = 2"}
	a := newReplica(t, opts)
	opts.notifier = notifier + "\nconcurrency = 16"
	b := newReplica(t, opts)

	rdb := redis.NewClient(&redis.Options{Addr: redisSrv.Addr, DB: 2})
	defer rdb.Close()
	rdb.FlushDB(context.Background())

	proc := exec.Command(bin, "-config", b.config)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			proc.Process.Kill()
		}
		proc.Wait()
	}()
	waitStatus(t, "http://"+b.admin+"/readyz", http.StatusOK)
	a.start(t)
	op.SetRedirectURL(b.public + "/bff/callback")

	for range users {
		u := login(t, op, b)
		if code, body, err := backchannel(b, logoutToken(op, u.sid)); err != nil || code != http.StatusOK {
			t.Fatalf("back-channel logout at B: %d %q %v", code, body, err)
		}
	}
	// Wait until B holds some notifications in flight (pending for its
	// consumer, named after its pid), then kill it.
	bPending := func() int64 {
		cs, err := rdb.XInfoConsumers(context.Background(), "bffgate:notify", "bffgate").Result()
		if err != nil {
			return 0
		}
		var n int64
		for _, c := range cs {
			if strings.Contains(c.Name, "-"+strconv.Itoa(proc.Process.Pid)+"-") {
				n += c.Pending
			}
		}
		return n
	}
	if err := proctest.Eventually(10*time.Second, 20*time.Millisecond, func() error {
		if bPending() == 0 {
			return errors.New("B never took a notification")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Some retries against the 503s: a jti seen twice.
	if !poll(10*time.Second, down.retried) {
		t.Fatal("no notification was retried against the 503s")
	}
	inFlight := bPending()
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	t.Logf("killed B with %d notifications in flight", inFlight)
	time.Sleep(500 * time.Millisecond)
	down.healthy.Store(true)

	var seen int
	if err := proctest.Eventually(30*time.Second, 50*time.Millisecond, func() error {
		var ok int
		seen, ok = down.counts()
		if ok != users {
			return fmt.Errorf("the downstream accepted %d of %d notifications (%d jtis seen)", ok, users, seen)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != users {
		t.Errorf("the downstream saw %d distinct jtis, want %d (one per notification, kept across retries and the claim)", seen, users)
	}
	// Everything was acknowledged.
	if err := proctest.Eventually(5*time.Second, 50*time.Millisecond, func() error {
		if n, _ := rdb.XLen(context.Background(), "bffgate:notify").Result(); n != 0 {
			return fmt.Errorf("stream still holds %d entries after every delivery", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
