package upstream

import (
	"context"
	"errors"
	"sync"
)

var (
	// ErrQueueFull is returned by Queue.Push when there is no room.
	ErrQueueFull = errors.New("notification queue full")
	// ErrQueueClosed is returned by Queue.Push after Close, and by
	// Queue.Pop once a closed queue is empty.
	ErrQueueClosed = errors.New("notification queue closed")
)

// Queue holds the notifications waiting for delivery. MemoryQueue is the
// default; a durable one (Redis Streams) can replace it.
type Queue interface {
	// Push adds n without waiting for room: it returns ErrQueueFull when
	// the queue is full and ErrQueueClosed after Close.
	Push(ctx context.Context, n Notification) error
	// Pop returns the next notification, waiting for one. After Close it
	// returns what is left, then ErrQueueClosed. It returns ctx's error if
	// ctx ends first while the queue is empty.
	Pop(ctx context.Context) (Notification, error)
	// Close stops Push; Pop keeps returning what is queued.
	Close() error
}

// durableQueue is a Queue that keeps each notification until the
// notifier acknowledges it (RedisQueue): a notification popped but never
// acknowledged, because its process died or shut down, is delivered by
// another process.
type durableQueue interface {
	Queue
	// Ack removes n for good; the notifier calls it once n has a final
	// outcome (delivered, or failed for good).
	Ack(ctx context.Context, n Notification) error
}

// MemoryQueue is a bounded in-memory Queue. Its contents are lost when the
// process exits. It holds only what is queued (a slice that grows up to
// the bound), not room for the bound: a buffered channel of 10,000
// notifications was 2 MiB of pointers that the garbage collector scanned
// on every cycle, whatever the gateway was doing.
type MemoryQueue struct {
	mu     sync.Mutex
	closed bool
	size   int
	items  []Notification // queued, oldest first, from head
	head   int
	// ready holds a token while there may be something for a waiting
	// Pop; Close closes it, which wakes every one.
	ready chan struct{}
}

// NewMemoryQueue returns a queue holding at most size notifications
// (at least 1).
func NewMemoryQueue(size int) *MemoryQueue {
	return &MemoryQueue{size: max(size, 1), ready: make(chan struct{}, 1)}
}

// Push implements Queue.
func (q *MemoryQueue) Push(_ context.Context, n Notification) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrQueueClosed
	}
	if len(q.items)-q.head >= q.size {
		return ErrQueueFull
	}
	if q.head > 0 && len(q.items) == cap(q.items) {
		// Reuse the room of what was popped before growing.
		k := copy(q.items, q.items[q.head:])
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
	q.items = append(q.items, n)
	q.signal()
	return nil
}

// signal leaves a token for a waiting Pop. q.mu is held.
func (q *MemoryQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Pop implements Queue. Queued notifications win over a done ctx, so a
// cancelled ctx drains what is left without waiting.
func (q *MemoryQueue) Pop(ctx context.Context) (Notification, error) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			n := q.items[q.head]
			q.items[q.head] = Notification{} // nothing kept for the collector
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
				if cap(q.items) > 64 {
					q.items = nil // a burst's room goes back
				}
			} else if !q.closed {
				q.signal() // more for another waiting Pop
			}
			q.mu.Unlock()
			return n, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return Notification{}, ErrQueueClosed
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return Notification{}, ctx.Err()
		}
	}
}

// Close implements Queue. It is safe to call more than once.
func (q *MemoryQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ready)
	}
	return nil
}

// Len reports how many notifications are queued.
func (q *MemoryQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
