package bff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

const (
	// heartbeatEvery keeps proxies and load balancers from closing idle
	// event streams.
	heartbeatEvery = 25 * time.Second
	// maxStreamsPerSession caps the open /bff/events streams of one session.
	maxStreamsPerSession = 8
)

// causeUnknown is sent when a stream finds its session gone without
// having been told why.
const causeUnknown session.Cause = "unknown"

// broker fans "session ended" out to the session's open event streams on
// this replica.
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan session.Cause]struct{}
}

func newBroker() *broker {
	return &broker{subs: map[string]map[chan session.Cause]struct{}{}}
}

// subscribe registers a stream for a session id; ok is false when the
// session already has maxStreamsPerSession streams.
func (b *broker) subscribe(id string) (ch chan session.Cause, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.subs[id]
	if len(set) >= maxStreamsPerSession {
		return nil, false
	}
	if set == nil {
		set = map[chan session.Cause]struct{}{}
		b.subs[id] = set
	}
	ch = make(chan session.Cause, 1)
	set[ch] = struct{}{}
	return ch, true
}

func (b *broker) unsubscribe(id string, ch chan session.Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[id], ch)
	if len(b.subs[id]) == 0 {
		delete(b.subs, id)
	}
}

// publish tells every stream of the session that it ended. It never
// blocks: each channel has room for the one event a stream needs.
func (b *broker) publish(id string, cause session.Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[id] {
		select {
		case ch <- cause:
		default:
		}
	}
}

// SessionEnded implements session.Observer.
func (b *broker) SessionEnded(_ context.Context, cause session.Cause, s *session.Session) {
	b.publish(s.ID, cause)
}

// SessionEndedElsewhere implements session.RemoteObserver: a session
// ended on another replica closes its streams on this one too.
func (b *broker) SessionEndedElsewhere(_ context.Context, cause session.Cause, id string) {
	b.publish(id, cause)
}

// handleEvents is GET /bff/events: a Server-Sent Events stream that sends
// "logout" the moment the session ends, then closes.
func (a *app) handleEvents(c echo.Context) error {
	r := c.Request()
	s, err := a.loadSession(r, false)
	if err != nil {
		return err
	}
	ch, ok := a.g.events.subscribe(s.ID)
	if !ok {
		return jsonError(http.StatusTooManyRequests, "too_many_streams", "too many event streams for this session", nil)
	}
	defer a.g.events.unsubscribe(s.ID, ch)

	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The session may have ended between the lookup and the subscription:
	// then say so at once, with the cause if the broker already has it.
	if _, err := a.g.sessions.Get(r.Context(), s.ID); errors.Is(err, session.ErrNotFound) {
		cause := causeUnknown
		select {
		case cause = <-ch:
		default:
		}
		return writeLogout(w, cause)
	}
	fmt.Fprintf(w, "retry: 5000\n: connected\n\n")
	w.Flush()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case cause := <-ch:
			return writeLogout(w, cause)
		case <-tick.C:
			// A backstop for a missed cross-replica message: the store
			// decides whether the session still lives.
			if _, err := a.g.sessions.Get(r.Context(), s.ID); errors.Is(err, session.ErrNotFound) {
				return writeLogout(w, causeUnknown)
			}
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case <-r.Context().Done():
			return nil
		}
	}
}

func writeLogout(w *echo.Response, cause session.Cause) error {
	fmt.Fprintf(w, "event: logout\ndata: {\"cause\":%q}\n\n", cause)
	w.Flush()
	return nil
}
