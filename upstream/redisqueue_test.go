package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/internal/proctest"
)

// redisAddr is the address of the package's redis-server, started by
// TestMain; empty when redis-server is missing outside CI.
var redisAddr string

func TestMain(m *testing.M) {
	stop, err := startRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// startRedis starts a throwaway redis-server on a free port. Without
// redis-server it starts nothing (the Redis tests skip), unless CI=true.
func startRedis() (stop func(), err error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			return nil, fmt.Errorf("redis-server is required in CI: %w", err)
		}
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := proctest.Eventually(10*time.Second, 20*time.Millisecond, func() error {
		return rdb.Ping(context.Background()).Err()
	}); err != nil {
		stop()
		return nil, fmt.Errorf("redis-server on %s did not answer", addr)
	}
	redisAddr = addr
	return stop, nil
}

func newTestRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	if redisAddr == "" {
		t.Skip("redis-server is not installed (set CI=true to make this a failure)")
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func testQueue(t *testing.T, rdb redis.UniversalClient, stream, consumer string, claimIdle time.Duration) *RedisQueue {
	q := NewRedisQueue(rdb, RedisQueueConfig{Stream: stream, Consumer: consumer, ClaimIdle: claimIdle, Block: 50 * time.Millisecond})
	t.Cleanup(func() { q.Close() })
	return q
}

func TestRedisQueueRoundTrip(t *testing.T) {
	ctx := context.Background()
	rdb := newTestRedis(t)
	stream := "test:notify:" + NewJTI()
	q := testQueue(t, rdb, stream, "a", time.Minute)
	want := Notification{App: "demo", Target: "demo/0", URL: "http://x/logout", JTI: "jti-1",
		Claims: LogoutClaims{Audience: "api", Subject: "alice", SID: "sid-1", JTI: "jti-1"}, Token: "never-stored",
		EnqueuedAt: time.Now().Truncate(time.Millisecond)}
	if err := q.Push(ctx, want); err != nil {
		t.Fatal(err)
	}
	raw, _ := rdb.XRange(ctx, stream, "-", "+").Result()
	if len(raw) != 1 || strings.Contains(fmt.Sprint(raw[0].Values), "never-stored") {
		t.Fatalf("stream: %v, want one entry without the token", raw)
	}
	got, err := q.Pop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claims != want.Claims || got.JTI != want.JTI || got.URL != want.URL || !got.EnqueuedAt.Equal(want.EnqueuedAt) {
		t.Errorf("Pop: got %+v, want %+v", got, want)
	}
	if err := q.Ack(ctx, got); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.XLen(ctx, stream).Result(); n != 0 {
		t.Errorf("stream length after Ack: %d, want 0", n)
	}
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := q.Pop(pctx); err == nil {
		t.Error("Pop of an empty queue: got nil error, want the context's")
	}
	q.Close()
	if err := q.Push(ctx, want); err != ErrQueueClosed {
		t.Errorf("Push after Close: %v, want ErrQueueClosed", err)
	}
	if _, err := q.Pop(ctx); err != ErrQueueClosed {
		t.Errorf("Pop after Close: %v, want ErrQueueClosed", err)
	}
}

// TestRedisQueueClaim: consumer A takes an entry and dies without
// acknowledging it; B claims it once it has been idle for ClaimIdle, and
// not before. A live consumer's entries are renewed and never claimed.
func TestRedisQueueClaim(t *testing.T) {
	ctx := context.Background()
	rdb := newTestRedis(t)
	stream := "test:notify:" + NewJTI()
	const idle = 300 * time.Millisecond
	a := testQueue(t, rdb, stream, "a", idle)
	b := testQueue(t, rdb, stream, "b", idle)
	for _, jti := range []string{"dead", "alive"} {
		if err := a.Push(ctx, Notification{App: "demo", JTI: jti, Claims: LogoutClaims{JTI: jti}}); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := a.Pop(ctx)
	if err != nil || dead.JTI != "dead" {
		t.Fatalf("Pop: %+v, %v", dead, err)
	}
	// A "dies": it forgets the entry (no renewal, no ack).
	a.mu.Lock()
	delete(a.inflight, dead.receipt)
	a.mu.Unlock()
	alive, err := a.Pop(ctx)
	if err != nil || alive.JTI != "alive" {
		t.Fatalf("Pop: %+v, %v", alive, err)
	}

	start := time.Now()
	got, err := b.Pop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.JTI != "dead" || got.Claims.JTI != "dead" {
		t.Errorf("B claimed %q, want the dead consumer's entry with its jti", got.JTI)
	}
	if waited := time.Since(start); waited < idle/2 {
		t.Errorf("B claimed after %v, before the entry was idle for %v", waited, idle)
	}
	b.Ack(ctx, got)
	// A keeps "alive" claimed: B finds nothing more for several ClaimIdle.
	pctx, cancel := context.WithTimeout(ctx, 4*idle)
	defer cancel()
	if n, err := b.Pop(pctx); err == nil {
		t.Errorf("B claimed %q, which A is still delivering", n.JTI)
	}
	a.Ack(ctx, alive)
}

// TestNotifierRedisQueueResigns delivers through the Redis queue with a
// Sign hook: a receiver answering 503 twice gets three tokens, each
// signed afresh, all with the same jti, and the entry is acknowledged.
func TestNotifierRedisQueueResigns(t *testing.T) {
	rdb := newTestRedis(t)
	stream := "test:notify:" + NewJTI()
	rc := &receiver{answer: answers(503, 503, 200)}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	signer, err := NewSigner(SignerConfig{Issuer: "https://gw.example.com", KeyFile: writeKeyPEM(t, testECKey(), "PRIVATE KEY")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	signs := 0
	q := NewRedisQueue(rdb, RedisQueueConfig{Stream: stream, Block: 50 * time.Millisecond})
	nt := newTestNotifier(NotifierConfig{
		MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Queue: q,
		Sign: func(n Notification) (string, error) { signs++; return signer.SignNotification(n) },
	}, srv.Client())
	nt.Start()
	jti := NewJTI()
	if !nt.Enqueue(context.Background(), Notification{App: "demo", Target: "demo/0", URL: srv.URL + "/logout", JTI: jti,
		Claims: LogoutClaims{Audience: "api", SID: "sid-1", JTI: jti}}) {
		t.Fatal("Enqueue = false")
	}
	_ = proctest.Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if len(rc.received()) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nt.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	reqs := rc.received()
	if len(reqs) != 3 || signs != 3 {
		t.Fatalf("receiver got %d requests, %d tokens signed; want 3 and 3", len(reqs), signs)
	}
	for i, r := range reqs {
		if got := jtiOf(t, r.token); got != jti {
			t.Errorf("attempt %d: jti %q, want %q", i, got, jti)
		}
	}
	if n, _ := rdb.XLen(context.Background(), stream).Result(); n != 0 {
		t.Errorf("stream length after delivery: %d, want 0 (acknowledged and deleted)", n)
	}
	if got := nt.count("bffgate_downstream_logout_total", map[string]string{"result": "delivered"}); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
}
