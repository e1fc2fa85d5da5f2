package bff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

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

// broker fans "session ended" out to the session's open event streams on
// this replica, and bounds them: per session, per user, in total.
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan session.Cause]struct{}
	// perUser counts the streams of each user (userKey), total all of them.
	perUser           map[string]int
	total             int
	maxUser, maxTotal int
	open              prometheus.Gauge
	rejected          *prometheus.CounterVec
	// closing is closed when the gateway starts shutting down: every
	// stream says "reconnect" and ends.
	closing   chan struct{}
	closeOnce sync.Once
}

// Why a stream was refused (the reason label of
// bffgate_event_streams_rejected_total).
const (
	capSession = "session"
	capUser    = "user"
	capGlobal  = "global"
)

func newBroker(l ConnLimits, reg prometheus.Registerer) *broker {
	b := &broker{
		subs:     map[string]map[chan session.Cause]struct{}{},
		perUser:  map[string]int{},
		maxUser:  l.MaxEventStreamsPerUser,
		maxTotal: l.MaxEventStreams,
		closing:  make(chan struct{}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bffgate_event_streams",
			Help: "Open /bff/events streams on this replica.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_event_streams_rejected_total",
			Help: "Refused /bff/events streams, by the cap that was reached (session, user, global).",
		}, []string{"reason"}),
	}
	for _, r := range []string{capSession, capUser, capGlobal} {
		b.rejected.WithLabelValues(r)
	}
	reg.MustRegister(b.open, b.rejected)
	return b
}

// userKey identifies a user across sessions: app, issuer and subject.
func userKey(s *session.Session) string {
	return s.App + "\x00" + s.Issuer + "\x00" + s.Subject
}

// shutdown tells every stream, open or opened from now on, to reconnect
// (to another replica, or to this one once it is back) and to end.
func (b *broker) shutdown() { b.closeOnce.Do(func() { close(b.closing) }) }

// CloseStreams tells every open /bff/events stream to reconnect and ends
// it, at once; streams opened later get the same answer. Call it when
// shutdown starts (http.Server.RegisterOnShutdown), so that no stream
// holds the HTTP drain. A reconnect is not a logout: client.js opens the
// stream again after the hinted delay.
func (g *Gateway) CloseStreams() { g.events.shutdown() }

// subscribe registers a stream for a session id of a user; refused names
// the cap that is reached, if one is.
func (b *broker) subscribe(id, user string) (ch chan session.Cause, refused string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.subs[id]
	switch {
	case len(set) >= maxStreamsPerSession:
		refused = capSession
	case b.perUser[user] >= b.maxUser:
		refused = capUser
	case b.total >= b.maxTotal:
		refused = capGlobal
	}
	if refused != "" {
		b.rejected.WithLabelValues(refused).Inc()
		return nil, refused
	}
	if set == nil {
		set = map[chan session.Cause]struct{}{}
		b.subs[id] = set
	}
	ch = make(chan session.Cause, 1)
	set[ch] = struct{}{}
	b.perUser[user]++
	b.total++
	b.open.Inc()
	return ch, ""
}

func (b *broker) unsubscribe(id, user string, ch chan session.Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[id][ch]; !ok {
		return
	}
	delete(b.subs[id], ch)
	if len(b.subs[id]) == 0 {
		delete(b.subs, id)
	}
	if b.perUser[user]--; b.perUser[user] <= 0 {
		delete(b.perUser, user)
	}
	b.total--
	b.open.Dec()
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
	user := userKey(s)
	ch, refused := e.broker.subscribe(s.ID, user)
	if refused != "" {
		return refuseStream(c, refused)
	}
	defer e.broker.unsubscribe(s.ID, user, ch)

	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The session may have ended between the lookup and the subscription:
	// then say so at once, with the cause if the broker already has it.
	if _, err := e.sess.sessions.Get(r.Context(), s.ID); errors.Is(err, session.ErrNotFound) {
		cause := causeUnknown
		select {
		case cause = <-ch:
		default:
		}
		return writeLogout(w, cause)
	}
	fmt.Fprintf(w, "retry: 5000\n: connected\n\n")
	w.Flush()
	if e.broker.isClosing() {
		return writeReconnect(w)
	}
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case cause := <-ch:
			return writeLogout(w, cause)
		case <-tick.C:
			// A backstop for a missed cross-replica message: the store
			// decides whether the session still lives.
			if _, err := e.sess.sessions.Get(r.Context(), s.ID); errors.Is(err, session.ErrNotFound) {
				return writeLogout(w, causeUnknown)
			}
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case <-e.broker.closing:
			select {
			case cause := <-ch: // an end that raced the shutdown wins
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

func (b *broker) isClosing() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// writeReconnect ends a stream because the gateway shuts down: a retry
// hint for EventSource's own reconnection, and a "reconnect" event for
// client.js, which never reads it as a logout.
func writeReconnect(w *echo.Response) error {
	ms := reconnectAfter.Milliseconds()
	fmt.Fprintf(w, "retry: %d\nevent: reconnect\ndata: {\"retry_ms\":%d}\n\n", ms, ms)
	w.Flush()
	return nil
}

func writeLogout(w *echo.Response, cause session.Cause) error {
	fmt.Fprintf(w, "event: logout\ndata: {\"cause\":%q}\n\n", cause)
	w.Flush()
	return nil
}
