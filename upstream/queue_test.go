package upstream

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestMemoryQueueEmptyIsSmall: an empty queue holds no room for its
// bound. A channel of 10,000 notifications was 2 MiB of pointers that the
// garbage collector scanned on every cycle (half the gateway's live heap,
// and so half the marking paid per request).
func TestMemoryQueueEmptyIsSmall(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	q := NewMemoryQueue(DefaultNotifyQueueSize)
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(q)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<10 {
		t.Errorf("an empty queue of %d allocates %d bytes, want at most 4 KiB", DefaultNotifyQueueSize, got)
	}
}

// TestMemoryQueueBoundAndOrder: first in, first out, ErrQueueFull at the
// bound, and room again once popped.
func TestMemoryQueueBoundAndOrder(t *testing.T) {
	ctx := context.Background()
	q := NewMemoryQueue(3)
	for i := range 3 {
		if err := q.Push(ctx, Notification{JTI: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push(ctx, Notification{JTI: "d"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push beyond the bound: %v, want ErrQueueFull", err)
	}
	if q.Len() != 3 {
		t.Fatalf("Len %d, want 3", q.Len())
	}
	for _, want := range []string{"a", "b"} {
		n, err := q.Pop(ctx)
		if err != nil || n.JTI != want {
			t.Fatalf("pop: %q %v, want %q", n.JTI, err, want)
		}
	}
	if err := q.Push(ctx, Notification{JTI: "d"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"c", "d"} {
		n, err := q.Pop(ctx)
		if err != nil || n.JTI != want {
			t.Fatalf("pop: %q %v, want %q", n.JTI, err, want)
		}
	}
}

// TestMemoryQueuePopWaits: Pop waits for a Push, ends with its context
// when empty, prefers what is queued over a done context, and after Close
// drains what is left, then ErrQueueClosed.
func TestMemoryQueuePopWaits(t *testing.T) {
	q := NewMemoryQueue(10)
	got := make(chan Notification, 1)
	go func() {
		n, err := q.Pop(context.Background())
		if err == nil {
			got <- n
		}
		close(got)
	}()
	if err := q.Push(context.Background(), Notification{JTI: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n.JTI != "x" {
			t.Fatalf("popped %q, want x", n.JTI)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pop did not return after a Push")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := q.Pop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pop of an empty queue: %v, want the context's error", err)
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	_ = q.Push(context.Background(), Notification{JTI: "y"})
	if n, err := q.Pop(done); err != nil || n.JTI != "y" {
		t.Fatalf("pop with a done context and a queued one: %q %v", n.JTI, err)
	}

	_ = q.Push(context.Background(), Notification{JTI: "z"})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	if err := q.Push(context.Background(), Notification{}); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("push after close: %v", err)
	}
	if n, err := q.Pop(context.Background()); err != nil || n.JTI != "z" {
		t.Fatalf("pop after close: %q %v, want z", n.JTI, err)
	}
	if _, err := q.Pop(context.Background()); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("pop of a closed, empty queue: %v", err)
	}
}

// TestMemoryQueueClosedWakesWaiters: Close wakes every waiting Pop.
func TestMemoryQueueClosedWakesWaiters(t *testing.T) {
	q := NewMemoryQueue(10)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := q.Pop(context.Background())
			errs <- err
		}()
	}
	_ = q.Close()
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrQueueClosed) {
				t.Fatalf("waiting pop after close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting Pop was not woken by Close")
		}
	}
}
