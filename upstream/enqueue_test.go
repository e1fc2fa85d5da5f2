package upstream

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// blackHole is a Redis that accepts connections and never answers: the
// worst case, where every command waits for its deadline.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn // touched by the accept loop only until ln closes
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestEnqueueBoundedWhenRedisHangs: a back-channel logout queues its
// downstream notifications inside the request. With the durable queue on
// a Redis that never answers, the fan-out of one session end (three
// receivers) must return within the enqueue bound, not after go-redis's
// own timeouts and retries.
func TestEnqueueBoundedWhenRedisHangs(t *testing.T) {
	// As session.NewRedisClient builds it: deadlines of contexts are
	// honoured.
	rdb := redis.NewClient(&redis.Options{Addr: blackHole(t), ContextTimeoutEnabled: true, MaxRetries: 1})
	defer rdb.Close()
	q := NewRedisQueue(rdb, RedisQueueConfig{Stream: "test:notify:" + NewJTI()})
	nt := newTestNotifier(NotifierConfig{Queue: q, EnqueueTimeout: 200 * time.Millisecond}, nil)
	var downs []Downstream
	for _, name := range []string{"a", "b", "c"} {
		downs = append(downs, Downstream{App: "demo", Name: "demo/" + name, BackchannelURI: "http://" + name + ".test/logout", Audience: name, Always: true})
	}
	f, err := NewFanout("https://gw.example.com", nt.Notifier, downs, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.SessionEnded(context.Background(), Ended{App: "demo", Subject: "alice", SID: "sid-1"})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a session end still waits for Redis after 5s; the enqueue bound is 200ms")
	}
	if got := nt.count("bffgate_downstream_logout_dropped_total", map[string]string{"app": "demo"}); got != 3 {
		t.Errorf("dropped = %v, want 3 (counted and logged)", got)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nt.Shutdown(sctx)
}
