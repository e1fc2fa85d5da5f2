package bff

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/session"
)

// wheelSlots is the number of buckets the heartbeat wheel spreads the
// streams over: one tick every heartbeatEvery/wheelSlots wakes the
// streams of one bucket, so 10,000 streams cost one timer and a few
// hundred channel sends a second, not 10,000 timers firing at once.
const wheelSlots = 25

// stream is one open /bff/events stream as the broker sees it. Until it
// is parked, its handler goroutine waits on both channels; the broker
// never blocks on them. A parked stream (p set, channels nil) has no
// goroutine: the broker writes to its connection (eventsparked.go).
type stream struct {
	// ended carries the cause of the session's end (room for one).
	ended chan session.Cause
	// beat asks the handler to re-check the session and send a
	// heartbeat (room for one: a slow stream skips beats, never blocks
	// the wheel).
	beat chan struct{}
	slot int
	p    *parked
}

// broker fans "session ended" out to the session's open event streams on
// this replica, and bounds them: per session, per user, in total. It also
// drives every stream's heartbeat from one shared ticker (a timing wheel),
// which runs only while streams are open.
type broker struct {
	mu sync.Mutex
	// subs holds the streams of each session id: publish touches only
	// the streams of the session that ended.
	subs map[string]map[*stream]struct{}
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

	// every is the heartbeat interval (heartbeatEvery; tests shorten it
	// before the first stream opens).
	every time.Duration
	// wheel holds the streams by heartbeat bucket; cursor is the bucket
	// the last tick woke. stopWheel is non-nil while the ticker runs.
	wheel     [wheelSlots]map[*stream]struct{}
	cursor    int
	stopWheel chan struct{}

	// sessions re-checks a parked stream's session at its heartbeat.
	sessions sessionGetter
	// hangups tells when the peer of a parked stream goes away.
	hangups hangups
}

// sessionGetter is what the broker needs of the session manager.
type sessionGetter interface {
	Get(ctx context.Context, id string) (*session.Session, error)
}

func newBroker(l ConnLimits, sessions sessionGetter, reg prometheus.Registerer) *broker {
	b := &broker{
		sessions: sessions,
		subs:     map[string]map[*stream]struct{}{},
		perUser:  map[string]int{},
		maxUser:  l.MaxEventStreamsPerUser,
		maxTotal: l.MaxEventStreams,
		closing:  make(chan struct{}),
		every:    heartbeatEvery,
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bffgate_event_streams",
			Help: "Open /bff/events streams on this replica.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bffgate_event_streams_rejected_total",
			Help: "Refused /bff/events streams, by the cap that was reached (session, user, global).",
		}, []string{"reason"}),
	}
	for i := range b.wheel {
		b.wheel[i] = map[*stream]struct{}{}
	}
	for _, r := range []string{capSession, capUser, capGlobal} {
		b.rejected.WithLabelValues(r)
	}
	reg.MustRegister(b.open, b.rejected)
	return b
}

// Why a stream was refused (the reason label of
// bffgate_event_streams_rejected_total).
const (
	capSession = "session"
	capUser    = "user"
	capGlobal  = "global"
)

// userKey identifies a user across sessions: app, issuer and subject.
func userKey(s *session.Session) string {
	return s.App + "\x00" + s.Issuer + "\x00" + s.Subject
}

// shutdown tells every stream, open or opened from now on, to reconnect
// (to another replica, or to this one once it is back) and to end. It
// returns once the parked streams are told and closed (within
// shutdownWriteTimeout); handler streams end on their own goroutines,
// which the HTTP drain waits for. Every call waits for the first.
func (b *broker) shutdown() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		close(b.closing)
		var parked []*stream
		for _, set := range b.subs {
			for st := range set {
				if st.p != nil {
					parked = append(parked, st)
				}
			}
		}
		b.mu.Unlock()
		b.endAll(parked, reconnectEvent, time.Now().Add(shutdownWriteTimeout))
	})
}

// CloseStreams tells every open /bff/events stream to reconnect and ends
// it, at once; streams opened later get the same answer. Call it when
// shutdown starts (http.Server.RegisterOnShutdown, and in the HTTP drain:
// net/http does not see the connections of parked streams), so that no
// stream holds the drain. It returns once the parked streams are closed.
// A reconnect is not a logout: client.js opens the stream again after the
// hinted delay. The proxied WebSockets, which net/http does not see
// either, get a close frame 1001 "going away" (proxy.Live.Shutdown).
func (g *Gateway) CloseStreams() {
	var wg sync.WaitGroup
	wg.Go(g.events.shutdown)
	if g.parts.live != nil {
		wg.Go(g.parts.live.Shutdown)
	}
	wg.Wait()
}

// subscribe registers a stream for a session id of a user; refused names
// the cap that is reached, if one is. The stream's first heartbeat comes
// one interval later (less at most one wheel tick).
func (b *broker) subscribe(id, user string) (st *stream, refused string) {
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
		set = map[*stream]struct{}{}
		b.subs[id] = set
	}
	st = &stream{ended: make(chan session.Cause, 1), beat: make(chan struct{}, 1), slot: b.cursor}
	set[st] = struct{}{}
	b.wheel[st.slot][st] = struct{}{}
	b.perUser[user]++
	b.total++
	b.open.Inc()
	if b.stopWheel == nil {
		b.stopWheel = make(chan struct{})
		go b.runWheel(b.stopWheel, b.every/wheelSlots)
	}
	return st, ""
}

// setCaps sets the per-user and global caps (a reload). Lowering them
// ends no open stream: only the next ones are refused beyond them.
func (b *broker) setCaps(l ConnLimits) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxUser, b.maxTotal = l.MaxEventStreamsPerUser, l.MaxEventStreams
}

// count is the number of open streams.
func (b *broker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func (b *broker) unsubscribe(id, user string, st *stream) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[id][st]; !ok {
		return
	}
	delete(b.subs[id], st)
	if len(b.subs[id]) == 0 {
		delete(b.subs, id)
	}
	delete(b.wheel[st.slot], st)
	if b.perUser[user]--; b.perUser[user] <= 0 {
		delete(b.perUser, user)
	}
	b.total--
	b.open.Dec()
	if b.total == 0 && b.stopWheel != nil {
		// No stream, no timer: the gateway at rest wakes for nothing.
		close(b.stopWheel)
		b.stopWheel = nil
	}
}

// runWheel is the one heartbeat ticker of all streams, while any is open.
func (b *broker) runWheel(stop chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.turn(stop)
		}
	}
}

// turn advances the wheel by one bucket and asks that bucket's streams
// for a heartbeat. It never blocks on a stream.
func (b *broker) turn(stop chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopWheel != stop { // stopped (and maybe restarted) meanwhile
		return
	}
	b.cursor = (b.cursor + 1) % wheelSlots
	var parked []*stream
	for st := range b.wheel[b.cursor] {
		if st.p != nil {
			parked = append(parked, st)
			continue
		}
		select {
		case st.beat <- struct{}{}:
		default:
		}
	}
	if parked != nil {
		go b.beatParked(parked)
	}
}

// publish tells every stream of the session that it ended. It never
// blocks: each channel has room for the one event a stream needs. Its
// cost is the number of streams of that session (at most
// maxStreamsPerSession), not of all streams.
func (b *broker) publish(id string, cause session.Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for st := range b.subs[id] {
		if st.p != nil {
			go b.end(st, logoutEvent(cause), time.Now().Add(streamWriteTimeout))
			continue
		}
		select {
		case st.ended <- cause:
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
