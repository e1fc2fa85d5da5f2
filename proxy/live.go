package proxy

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/session"
)

// The kinds of live connection (the kind label of the metrics).
const (
	KindWebSocket = "websocket" // an upgraded connection (101 Switching Protocols)
	KindStream    = "stream"    // a response still streaming after its first flush
)

// liveShards is how many independently locked parts Live's index has:
// registrations of different sessions rarely wait for each other.
const liveShards = 64

// verifyTimeout bounds the store look-up that closes the gap between a
// request's session check and the registration of its connection.
const verifyTimeout = 5 * time.Second

// SessionGetter is what Live needs of the session manager: whether a
// session still exists.
type SessionGetter interface {
	Get(ctx context.Context, id string) (*session.Session, error)
}

// LiveConfig configures Live.
type LiveConfig struct {
	// Sessions re-checks a session whose connection registers after an
	// end may have slipped by (*session.Manager). Required.
	Sessions SessionGetter
	// Metrics receives bffgate_proxied_connections and
	// bffgate_proxied_connections_cut_total; nil registers nowhere.
	Metrics prometheus.Registerer
	// Apps are the app names whose metric series exist from the start.
	Apps []string
	// Logger logs the cuts (hashed session ids only); nil discards.
	Logger *slog.Logger
	// Absolute is the sessions' absolute lifetime (session.Timeouts):
	// a connection is cut when its session reaches it, even if no store
	// reports the expiry (Redis keys just vanish). 0: no such cut.
	Absolute time.Duration
}

// Live is the index of the proxied connections that outlive an ordinary
// request — upgraded WebSockets and responses that are still streaming
// after their first flush — by session id. It is a session.RemoteObserver:
// when a session ends, here or on another replica, it cuts every live
// connection of that session (a WebSocket gets a close frame 1008
// "session ended", a stream is aborted) and nothing else. Ordinary
// requests never touch it: they only borrow a pooled response writer.
type Live struct {
	seed     maphash.Seed
	shards   [liveShards]liveShard
	sessions SessionGetter
	logger   *slog.Logger
	absolute time.Duration
	// ends counts the session ends seen; a connection that registers
	// after it changed since its request began re-checks its session.
	ends atomic.Uint64
	// pending counts cuts under way (tests wait for it).
	pending sync.WaitGroup
	open    *prometheus.GaugeVec
	cuts    *prometheus.CounterVec
	// openWS and openStream are open's two series.
	openWS, openStream prometheus.Gauge
}

type liveShard struct {
	mu sync.Mutex
	// conns holds the first of each session's live connections; the
	// others hang off it (liveEntry.next).
	conns map[string]liveConn
}

// liveConn is one registered connection.
type liveConn interface {
	entry() *liveEntry
	// cut ends the connection because its session ended; it must not
	// block long and may be called after the connection finished.
	cut()
}

// liveEntry is the part of a connection the index links.
type liveEntry struct {
	id, app, kind string
	prev, next    liveConn
	// seq is Live.ends when the request began.
	seq uint64
	// created is the session's start; timer cuts the connection at the
	// session's absolute expiry.
	created time.Time
	timer   *time.Timer
}

// NewLive returns an empty index; register it with the session manager
// (Manager.Observe) so that it learns of every end.
func NewLive(cfg LiveConfig) (*Live, error) {
	if cfg.Sessions == nil {
		return nil, errors.New("live connections: sessions must not be nil")
	}
	l := &Live{seed: maphash.MakeSeed(), sessions: cfg.Sessions, logger: cfg.Logger, absolute: cfg.Absolute}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	for i := range l.shards {
		l.shards[i].conns = map[string]liveConn{}
	}
	l.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bffgate_proxied_connections",
		Help: "Proxied connections a sign-out would cut on this replica (WebSockets, responses still streaming), by kind.",
	}, []string{"kind"})
	l.cuts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bffgate_proxied_connections_cut_total",
		Help: "Proxied connections cut because their session ended, by app and kind.",
	}, []string{"app", "kind"})
	l.openWS, l.openStream = l.open.WithLabelValues(KindWebSocket), l.open.WithLabelValues(KindStream)
	for _, k := range []string{KindWebSocket, KindStream} {
		for _, a := range cfg.Apps {
			l.cuts.WithLabelValues(a, k)
		}
	}
	if cfg.Metrics != nil {
		if err := errors.Join(cfg.Metrics.Register(l.open), cfg.Metrics.Register(l.cuts)); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Live) shard(id string) *liveShard {
	return &l.shards[maphash.String(l.seed, id)%liveShards]
}

// add registers c. If a session ended since c's request began, it checks
// in the background that c's session still exists, and cuts c if not.
func (l *Live) add(c liveConn) {
	e := c.entry()
	expired := false
	sh := l.shard(e.id)
	sh.mu.Lock()
	if l.absolute > 0 && !e.created.IsZero() {
		// Under the lock: the timer's remove must find c.
		if until := time.Until(e.created.Add(l.absolute)); until > 0 {
			e.timer = time.AfterFunc(until, func() { l.expire(c) })
		} else {
			expired = true
		}
	}
	if head, ok := sh.conns[e.id]; ok {
		e.next = head
		head.entry().prev = c
	}
	sh.conns[e.id] = c
	sh.mu.Unlock()
	l.gauge(e.kind).Inc()
	if expired {
		l.expire(c)
		return
	}
	if l.ends.Load() != e.seq {
		l.pending.Add(1)
		go l.verify(c)
	}
}

// remove unregisters c; false if a cut took it already.
func (l *Live) remove(c liveConn) bool {
	e := c.entry()
	sh := l.shard(e.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	head, ok := sh.conns[e.id]
	if !ok {
		return false
	}
	switch {
	case e.prev != nil:
		e.prev.entry().next = e.next
	case head == c:
		if e.next == nil {
			delete(sh.conns, e.id)
		} else {
			sh.conns[e.id] = e.next
		}
	default:
		return false // not in the list: a cut took it
	}
	if e.next != nil {
		e.next.entry().prev = e.prev
	}
	e.prev, e.next = nil, nil
	if e.timer != nil {
		e.timer.Stop()
	}
	l.gauge(e.kind).Dec()
	return true
}

// verify cuts c if its session is gone, or cannot be checked (fail
// closed: the stream would outlive a sign-out this replica missed).
func (l *Live) verify(c liveConn) {
	defer l.pending.Done()
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	e := c.entry()
	_, err := l.sessions.Get(ctx, e.id)
	if err == nil {
		return
	}
	if !errors.Is(err, session.ErrNotFound) {
		l.logger.Warn("live connection: session not checked, cut", "app", e.app, "kind", e.kind, "err", err)
	}
	if l.remove(c) {
		l.cutOne(c, e)
	}
}

// expire cuts c at its session's absolute expiry.
func (l *Live) expire(c liveConn) {
	if l.remove(c) {
		l.cutOne(c, c.entry())
	}
}

// SessionEnded implements session.Observer: it cuts the session's live
// connections on this replica.
func (l *Live) SessionEnded(_ context.Context, _ session.Cause, s *session.Session) {
	l.end(s.ID)
}

// SessionEndedElsewhere implements session.RemoteObserver: a session
// another replica ended may have live connections here.
func (l *Live) SessionEndedElsewhere(_ context.Context, _ session.Cause, id string) {
	l.end(id)
}

// end takes the session's connections out of the index (O(its
// connections)) and cuts each on its own goroutine, so that the caller
// (a logout request, the broadcast listener) never waits for a peer.
func (l *Live) end(id string) {
	l.ends.Add(1)
	sh := l.shard(id)
	var taken []liveConn
	sh.mu.Lock()
	c := sh.conns[id]
	delete(sh.conns, id)
	for c != nil {
		e := c.entry()
		taken = append(taken, c)
		c, e.prev, e.next = e.next, nil, nil
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	sh.mu.Unlock()
	for _, c := range taken {
		e := c.entry()
		l.gauge(e.kind).Dec()
		l.pending.Add(1)
		go func() {
			defer l.pending.Done()
			l.cutOne(c, e)
		}()
	}
}

// gauge is the open gauge of kind, without a label look-up.
func (l *Live) gauge(kind string) prometheus.Gauge {
	if kind == KindWebSocket {
		return l.openWS
	}
	return l.openStream
}

func (l *Live) cutOne(c liveConn, e *liveEntry) {
	c.cut()
	l.cuts.WithLabelValues(e.app, e.kind).Inc()
	l.logger.Info("proxied connection cut: session ended", "app", e.app, "kind", e.kind, "session_hash", session.Hash(e.id))
}

// Shutdown closes every WebSocket in the index with 1001 "going away",
// so that browsers reconnect (to another replica) instead of seeing the
// connection drop: net/http's Shutdown does not see taken-over
// connections. Streams are left to the HTTP drain. It returns once the
// close frames are sent (or failed).
func (l *Live) Shutdown() {
	var socks []*wsConn
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, c := range sh.conns {
			for ; c != nil; c = c.entry().next {
				if ws, ok := c.(*wsConn); ok {
					socks = append(socks, ws)
				}
			}
		}
		sh.mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, ws := range socks {
		if !l.remove(ws) {
			continue // cut meanwhile
		}
		ws.mu.Lock()
		ws.frame = goingAwayFrame
		ws.mu.Unlock()
		wg.Go(ws.cut)
	}
	wg.Wait()
}

// Len returns how many connections the index holds.
func (l *Live) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, c := range sh.conns {
			for ; c != nil; c = c.entry().next {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// Wait waits for the cuts under way (tests; shutdown).
func (l *Live) Wait() { l.pending.Wait() }
