package bff

import (
	"errors"
	"io"
	"net/http"
	"strconv"
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
	// reconnectAfter is the retry hint of the "reconnect" event a stream
	// gets when the gateway shuts down; client.js waits between it and
	// twice it, so that the streams of a replica do not all come back to
	// the others at once.
	reconnectAfter = 2 * time.Second
	// streamRetryAfter is the Retry-After of a stream refused at a cap.
	streamRetryAfter = 30 * time.Second
)

// causeUnknown is sent when a stream finds its session gone without
// having been told why.
const causeUnknown session.Cause = "unknown"

// eventStreams is GET /bff/events.
type eventStreams struct {
	sess   appSession
	broker *broker
}

// serve is GET /bff/events: a Server-Sent Events stream that sends
// "logout" the moment the session ends, then closes.
func (e *eventStreams) serve(c echo.Context) error {
	r := c.Request()
	s, err := e.sess.load(r, false)
	if err != nil {
		return err
	}
	// Keep only the id and the user key: the session record (claims and
	// all) is not held for the life of the stream.
	id, user := s.ID, userKey(s)
	st, refused := e.broker.subscribe(id, user)
	if refused != "" {
		return refuseStream(c, refused)
	}
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// HTTP/1.1: the broker holds the connection, this goroutine ends.
	if e.park(c, st, id, user) {
		return nil
	}
	// HTTP/2, or a ResponseWriter that cannot be taken over: this
	// goroutine holds the stream.
	defer e.broker.unsubscribe(id, user, st)
	w.WriteHeader(http.StatusOK)
	// The session may have ended between the lookup and the subscription:
	// then say so at once, with the cause if the broker already has it.
	if _, err := e.sess.sessions.Get(r.Context(), id); errors.Is(err, session.ErrNotFound) {
		cause := causeUnknown
		select {
		case cause = <-st.ended:
		default:
		}
		return writeLogout(w, cause)
	}
	io.WriteString(w, connectedEvent)
	w.Flush()
	// Heartbeats come from the broker's shared wheel, not a timer here.
	// A stream opened after shutdown began finds closing ready at once.
	for {
		select {
		case cause := <-st.ended:
			return writeLogout(w, cause)
		case <-st.beat:
			// A backstop for a missed cross-replica message: the store
			// decides whether the session still lives.
			if _, err := e.sess.sessions.Get(r.Context(), id); errors.Is(err, session.ErrNotFound) {
				return writeLogout(w, causeUnknown)
			}
			if _, err := io.WriteString(w, heartbeatEvent); err != nil {
				return nil
			}
			w.Flush()
		case <-e.broker.closing:
			select {
			case cause := <-st.ended: // an end that raced the shutdown wins
				return writeLogout(w, cause)
			default:
				return writeReconnect(w)
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// refuseStream answers a stream over a cap: 429 when the session or the
// user holds too many (their own doing), 503 when the replica is full;
// both with Retry-After (client.js falls back to polling /bff/user
// meanwhile). Written here, not through the error boundary, which would
// log every refusal of a flood at error level: the metric counts them.
func refuseStream(c echo.Context, refused string) error {
	w := c.Response()
	w.Header().Set("Retry-After", strconv.Itoa(int(streamRetryAfter.Seconds())))
	switch refused {
	case capGlobal:
		writeJSONError(w, c.Request(), http.StatusServiceUnavailable, "too_many_streams", "the gateway holds too many event streams")
	case capUser:
		writeJSONError(w, c.Request(), http.StatusTooManyRequests, "too_many_streams", "too many event streams for this user")
	default:
		writeJSONError(w, c.Request(), http.StatusTooManyRequests, "too_many_streams", "too many event streams for this session")
	}
	return nil
}

// writeReconnect ends a stream because the gateway shuts down.
func writeReconnect(w *echo.Response) error {
	io.WriteString(w, reconnectEvent)
	w.Flush()
	return nil
}

func writeLogout(w *echo.Response, cause session.Cause) error {
	io.WriteString(w, logoutEvent(cause))
	w.Flush()
	return nil
}
