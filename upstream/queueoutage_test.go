package upstream

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// downQueue is a durable queue whose store is down until up is closed;
// then it hands out one notification and waits.
type downQueue struct {
	up    chan struct{}
	mu    sync.Mutex
	pops  int
	given bool
}

func (q *downQueue) Push(context.Context, Notification) error {
	return errors.New("redis: connection refused")
}
func (q *downQueue) Close() error { return nil }
func (q *downQueue) Pop(ctx context.Context) (Notification, error) {
	q.mu.Lock()
	q.pops++
	q.mu.Unlock()
	select {
	case <-q.up:
	default:
		return Notification{}, errors.New("redis: connection refused")
	}
	q.mu.Lock()
	give := !q.given
	q.given = true
	q.mu.Unlock()
	if give {
		return notification("http://app.test/logout", "token"), nil
	}
	<-ctx.Done()
	return Notification{}, ctx.Err()
}

// TestNotifierQueueOutageLogsOnce: a durable queue that is down for a
// minute is logged once when it goes down and once when it is back, not
// once per worker per second, and the workers back off instead of polling
// it every second each.
func TestNotifierQueueOutageLogsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &downQueue{up: make(chan struct{})}
		rc := &receiver{answer: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }}
		nt := newTestNotifier(NotifierConfig{Queue: q, Concurrency: 8}, &http.Client{Transport: handlerTransport{rc}})
		nt.Start()
		time.Sleep(time.Minute) // synctest: fake time
		synctest.Wait()
		close(q.up)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := nt.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}

		logs := nt.logs.String()
		if n := strings.Count(logs, "level=ERROR"); n != 1 {
			t.Errorf("%d ERROR lines over a one-minute outage, want 1:\n%s", n, logs)
		}
		if !strings.Contains(logs, "downstream logout queue available again") {
			t.Errorf("no line says the queue is back:\n%s", logs)
		}
		q.mu.Lock()
		pops := q.pops
		q.mu.Unlock()
		// 8 workers polling every second for 60 s made 498 calls; backing
		// off (100 ms doubling to 5 s, ±50 % jitter) makes about 170.
		if pops > 8*25 {
			t.Errorf("%d Pop calls during a one-minute outage, want the workers to back off", pops)
		}
		if len(rc.received()) != 1 {
			t.Errorf("receiver got %d requests after the queue came back, want 1", len(rc.received()))
		}
	})
}
