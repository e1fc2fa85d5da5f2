package bff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bffgate/bffgate/session"
)

// A parked stream is an HTTP/1.1 /bff/events stream whose connection the
// handler took over from net/http (events_hijack.go) and handed to the
// broker: no goroutine, no bufio buffers, only the connection and this
// entry. The broker writes its heartbeats (from the shared wheel) and its
// end (logout, reconnect), and closes the connection when the session
// ends, at shutdown, on any write error, and when the peer goes away
// (hangups).

const (
	// streamWriteTimeout bounds every write to a parked stream: a peer
	// that takes nothing for that long (gone without a word, or not
	// reading) is closed. It also bounds the session re-check.
	streamWriteTimeout = 10 * time.Second
	// shutdownWriteTimeout bounds the "reconnect" writes at shutdown, all
	// streams together.
	shutdownWriteTimeout = 2 * time.Second
	// parkedWorkers is how many parked streams the broker writes to at
	// once (heartbeats of one wheel bucket, reconnects at shutdown): a few
	// slow peers do not hold up the rest.
	parkedWorkers = 64
)

// The events a stream sends.
const (
	connectedEvent = "retry: 5000\n: connected\n\n"
	heartbeatEvent = ": heartbeat\n\n"
)

// reconnectEvent ends a stream because the gateway shuts down: a retry
// hint for EventSource's own reconnection, and a "reconnect" event for
// client.js, which never reads it as a logout.
var reconnectEvent = fmt.Sprintf("retry: %d\nevent: reconnect\ndata: {\"retry_ms\":%d}\n\n", reconnectAfter.Milliseconds(), reconnectAfter.Milliseconds())

func logoutEvent(cause session.Cause) string {
	return fmt.Sprintf("event: logout\ndata: {\"cause\":%q}\n\n", cause)
}

// parked is what the broker holds of a parked stream.
type parked struct {
	conn     net.Conn
	id, user string
	// mu makes writes one at a time; done is set by whoever ends the
	// stream, and nothing is written after it.
	mu   sync.Mutex
	done atomic.Bool
	// watch is the hangups token, 0 when a goroutine watches instead.
	watch int32
}

var errStreamEnded = errors.New("stream ended")

// park hands a subscribed stream's connection, its response head and
// first event already written, to the broker. An end that came meanwhile
// (a publish, the shutdown) is written at once, on the caller's
// goroutine.
func (b *broker) park(st *stream, id, user string, conn net.Conn) {
	p := &parked{conn: conn, id: id, user: user}
	var pending string
	b.mu.Lock()
	select {
	case cause := <-st.ended:
		pending = logoutEvent(cause)
	default:
		select {
		case <-b.closing:
			pending = reconnectEvent
		default:
		}
	}
	st.p, st.ended, st.beat = p, nil, nil
	b.mu.Unlock()
	if pending != "" {
		b.end(st, pending, time.Now().Add(streamWriteTimeout))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done.Load() { // ended meanwhile (a publish)
		return
	}
	gone := func() { b.hangup(st) }
	if token, ok := b.hangups.watch(conn, gone); ok {
		p.watch = token
		return
	}
	// No descriptor to watch (not a socket, or no epoll): a goroutine
	// waits for the peer to close or to send anything (it must not).
	go func() {
		var buf [1]byte
		conn.Read(buf[:])
		gone()
	}()
}

// write sends one event with the given deadline.
func (b *broker) write(st *stream, event string, deadline time.Time) error {
	p := st.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done.Load() {
		return errStreamEnded
	}
	p.conn.SetWriteDeadline(deadline)
	_, err := io.WriteString(p.conn, event)
	return err
}

// end writes the stream's last event (none if empty), closes its
// connection and forgets it. Only the first end of a stream does
// anything.
func (b *broker) end(st *stream, event string, deadline time.Time) {
	p := st.p
	p.mu.Lock()
	if p.done.Swap(true) {
		p.mu.Unlock()
		return
	}
	if event != "" {
		p.conn.SetWriteDeadline(deadline)
		io.WriteString(p.conn, event)
	}
	watch := p.watch
	p.mu.Unlock()
	b.hangups.unwatch(watch)
	p.conn.Close()
	b.unsubscribe(p.id, p.user, st)
}

// hangup ends a stream whose peer went away. Closing the connection
// first cuts a write in progress short.
func (b *broker) hangup(st *stream) {
	p := st.p
	if p.done.Swap(true) {
		return
	}
	p.conn.Close()
	b.unsubscribe(p.id, p.user, st)
}

// endAll ends streams, parkedWorkers at a time, and returns when all are
// closed.
func (b *broker) endAll(streams []*stream, event string, deadline time.Time) {
	var g errgroup.Group
	g.SetLimit(parkedWorkers)
	for _, st := range streams {
		g.Go(func() error { b.end(st, event, deadline); return nil })
	}
	g.Wait()
}

// beatParked is the heartbeat of parked streams of one wheel bucket: it
// re-checks each one's session (a backstop for a missed cross-replica
// message) and writes a heartbeat, which also finds a peer that vanished
// (the write fails or times out).
func (b *broker) beatParked(streams []*stream) {
	var g errgroup.Group
	g.SetLimit(parkedWorkers)
	for _, st := range streams {
		g.Go(func() error { b.beat(st); return nil })
	}
	g.Wait()
}

func (b *broker) beat(st *stream) {
	p := st.p
	if p.done.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamWriteTimeout)
	_, err := b.sessions.Get(ctx, p.id)
	cancel()
	deadline := time.Now().Add(streamWriteTimeout)
	if errors.Is(err, session.ErrNotFound) {
		b.end(st, logoutEvent(causeUnknown), deadline)
		return
	}
	if err := b.write(st, heartbeatEvent, deadline); err != nil {
		b.end(st, "", deadline)
	}
}
