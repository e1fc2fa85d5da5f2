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
// process exits.
type MemoryQueue struct {
	mu     sync.RWMutex // Push holds it shared, Close exclusively
	closed bool
	ch     chan Notification
}

// NewMemoryQueue returns a queue holding at most size notifications
// (at least 1).
func NewMemoryQueue(size int) *MemoryQueue {
	return &MemoryQueue{ch: make(chan Notification, max(size, 1))}
}

// Push implements Queue.
func (q *MemoryQueue) Push(_ context.Context, n Notification) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrQueueClosed
	}
	select {
	case q.ch <- n:
		return nil
	default:
		return ErrQueueFull
	}
}

// Pop implements Queue. Queued notifications win over a done ctx, so a
// cancelled ctx drains what is left without waiting.
func (q *MemoryQueue) Pop(ctx context.Context) (Notification, error) {
	select {
	case n, ok := <-q.ch:
		return popped(n, ok)
	default:
	}
	select {
	case n, ok := <-q.ch:
		return popped(n, ok)
	case <-ctx.Done():
		return Notification{}, ctx.Err()
	}
}

func popped(n Notification, ok bool) (Notification, error) {
	if !ok {
		return Notification{}, ErrQueueClosed
	}
	return n, nil
}

// Close implements Queue. It is safe to call more than once.
func (q *MemoryQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	return nil
}

// Len reports how many notifications are queued.
func (q *MemoryQueue) Len() int { return len(q.ch) }
