package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
)

// cutWithin is the promise: a session's connections are cut within it.
const cutWithin = time.Second

// newEchoWS is a WebSocket upstream that echoes every message.
func newEchoWS(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// liveEnv is one replica's session manager with a Live index, and a
// front server proxying to target with the session named in the X-Sess
// request header.
type liveEnv struct {
	m     *session.Manager
	live  *Live
	front *httptest.Server
	reg   *prometheus.Registry
}

func newLiveEnv(t *testing.T, store session.Store, target string) *liveEnv {
	return newLiveEnvWith(t, store, target, 0)
}

// newLiveEnvWith is newLiveEnv with Live's absolute session lifetime.
func newLiveEnvWith(t *testing.T, store session.Store, target string, absolute time.Duration) *liveEnv {
	t.Helper()
	e := &liveEnv{m: session.NewManager(store, nil), reg: prometheus.NewRegistry()}
	t.Cleanup(func() { e.m.Close() })
	live, err := NewLive(LiveConfig{Sessions: e.m, Metrics: e.reg, Apps: []string{"demo"}, Absolute: absolute})
	if err != nil {
		t.Fatal(err)
	}
	e.live = live
	e.m.Observe(live)
	p := newTestProxy(t, target, staticTokens{token: "at"}, nil, func(c *Config) { c.Live = live })
	e.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := e.m.Get(r.Context(), r.Header.Get("X-Sess"))
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		p.ServeSession(w, r, s)
	}))
	t.Cleanup(e.front.Close)
	return e
}

func (e *liveEnv) newSession(t *testing.T, sub string) *session.Session {
	t.Helper()
	s := &session.Session{
		ID: session.NewID(), App: "demo", Issuer: "https://idp.example", Subject: sub, SID: "sid-" + sub,
		IDToken: "idt", Claims: json.RawMessage(`{"sub":"` + sub + `"}`), AccessToken: "at", RefreshToken: "rt",
		TokenExpiry: time.Now().Add(time.Hour), TokenIssued: time.Now(),
	}
	if err := e.m.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// dial opens a WebSocket through e's front server as session s.
func (e *liveEnv) dial(t *testing.T, s *session.Session) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(e.front.URL, "http") + "/api/ws"
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"X-Sess": {s.ID}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	echo(t, c, "hello")
	return c
}

// echo sends msg and wants it back.
func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

// wantClosed waits (cutWithin) for c to be closed with 1008 "session ended".
func wantClosed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cutWithin)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read after the session ended: %v, want a close frame within %v", err, cutWithin)
	}
	if ce.Code != CloseSessionEnded || ce.Reason != "session ended" {
		t.Fatalf("close = %d %q, want 1008 \"session ended\"", ce.Code, ce.Reason)
	}
}

func TestLiveWebSocketCutOnEnd(t *testing.T) {
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newEchoWS(t).URL)
	alice, bob := e.newSession(t, "alice"), e.newSession(t, "bob")
	aliceElsewhere := e.newSession(t, "alice") // the same user in another browser
	a1, a2, b := e.dial(t, alice), e.dial(t, alice), e.dial(t, bob)
	other := e.dial(t, aliceElsewhere)
	if n := e.live.Len(); n != 4 {
		t.Fatalf("Live.Len() = %d, want 4", n)
	}

	if _, err := e.m.End(context.Background(), alice.ID, session.CauseBackchannel); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, a1)
	wantClosed(t, a2)
	echo(t, b, "still here")     // another session's socket is untouched
	echo(t, other, "still here") // and the same user's in another session
	e.live.Wait()
	if n := e.live.Len(); n != 2 {
		t.Errorf("Live.Len() = %d after the cut, want 2", n)
	}
	if got := testutil.ToFloat64(e.live.cuts.WithLabelValues("demo", KindWebSocket)); got != 2 {
		t.Errorf("cut counter = %v, want 2", got)
	}
}

func TestLiveWebSocketClosedNormallyUnregisters(t *testing.T) {
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newEchoWS(t).URL)
	c := e.dial(t, e.newSession(t, "alice"))
	c.Close(websocket.StatusNormalClosure, "bye")
	if err := proctest.Eventually(5*time.Second, 5*time.Millisecond, func() error {
		if n := e.live.Len(); n != 0 {
			return fmt.Errorf("Live.Len() = %d after the socket closed, want 0", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// newStreamUpstream streams a chunk every 20ms until the client goes; it
// reports on gone when its request ended.
func newStreamUpstream(t *testing.T, gone chan<- struct{}) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { gone <- struct{}{} }()
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	return up
}

func TestLiveStreamAbortedOnEnd(t *testing.T) {
	gone := make(chan struct{}, 4)
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newStreamUpstream(t, gone).URL)
	alice, bob := e.newSession(t, "alice"), e.newSession(t, "bob")
	open := func(s *session.Session) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.front.URL+"/api/events", nil)
		req.Header.Set("X-Sess", s.ID)
		res, err := e.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		buf := make([]byte, 64)
		if _, err := res.Body.Read(buf); err != nil {
			t.Fatalf("first chunk: %v", err)
		}
		return res
	}
	ra, rb := open(alice), open(bob)
	if _, err := e.m.End(context.Background(), alice.ID, session.CauseAdmin); err != nil {
		t.Fatal(err)
	}
	wantCut(t, ra, gone, "aborted")
	buf := make([]byte, 64)
	if _, err := rb.Body.Read(buf); err != nil {
		t.Fatalf("the other session's stream: %v", err)
	}
}

// ioDrain reads res's body to its end.
// wantCut waits, at most cutWithin each, for res's stream to end with an
// error (how: "aborted", "reset"; a clean EOF would look like success to
// the client) and for its upstream request to end (gone closed).
func wantCut(t *testing.T, res *http.Response, gone <-chan struct{}, how string) {
	t.Helper()
	ended := make(chan error, 1)
	go func() {
		_, err := ioDrain(res)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatalf("the stream ended with a clean EOF, want it %s", how)
		}
	case <-time.After(cutWithin):
		t.Fatalf("the stream still flows %v after its session ended", cutWithin)
	}
	select {
	case <-gone: // the upstream request ended too
	case <-time.After(cutWithin):
		t.Fatal("the upstream request still runs")
	}
}

func ioDrain(res *http.Response) (int, error) {
	buf := make([]byte, 1024)
	n := 0
	for {
		k, err := res.Body.Read(buf)
		n += k
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
}

// TestLiveStreamEndedBeforeItRegistered: the session ends while the
// upstream has not answered yet; the stream registers at its first flush,
// sees that a session ended meanwhile, finds its own gone and is cut.
func TestLiveStreamEndedBeforeItRegistered(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), up.URL)
	alice := e.newSession(t, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // before the servers close, should the stream flow on
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.front.URL+"/api/events", nil)
	req.Header.Set("X-Sess", alice.ID)
	ended := make(chan error, 1)
	go func() {
		res, err := e.front.Client().Do(req)
		if err != nil {
			ended <- err
			return
		}
		defer res.Body.Close()
		_, err = ioDrain(res)
		ended <- err
	}()
	<-arrived
	if _, err := e.m.End(context.Background(), alice.ID, session.CauseUser); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the stream ended with a clean EOF, want it aborted")
		}
	case <-time.After(cutWithin):
		t.Fatalf("the stream still flows %v after its session ended", cutWithin)
	}
}

// TestLiveOrdinaryRequestNotRegistered: a response that is not streamed
// never enters the index, and its pooled writer is reused.
func TestLiveOrdinaryRequestNotRegistered(t *testing.T) {
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newEchoUpstream(t).URL)
	alice := e.newSession(t, "alice")
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, e.front.URL+"/api/x", nil)
		req.Header.Set("X-Sess", alice.ID)
		res, err := e.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if got := testutil.ToFloat64(e.live.openStream); got != 0 {
		t.Errorf("open streams = %v, want 0", got)
	}
	if n := e.live.Len(); n != 0 {
		t.Errorf("Live.Len() = %d, want 0", n)
	}
}

// TestLiveWebSocketCutAtAbsoluteExpiry: a socket is cut when its session
// reaches its absolute lifetime, even if no store reports the expiry.
func TestLiveWebSocketCutAtAbsoluteExpiry(t *testing.T) {
	const lifetime = 700 * time.Millisecond
	e := newLiveEnvWith(t, session.NewMemoryStore(session.MemoryConfig{}), newEchoWS(t).URL, lifetime)
	s := e.newSession(t, "alice")
	c := e.dial(t, s)
	created, err := e.m.Get(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseSessionEnded {
		t.Fatalf("read: %v, want close 1008 at the absolute expiry", err)
	}
	if at := time.Since(created.CreatedAt); at < lifetime || at > lifetime+cutWithin {
		t.Errorf("closed %v after the session began, want between %v and %v", at, lifetime, lifetime+cutWithin)
	}
}

// TestLiveWebSocketCutBetweenFrames: the upstream sends large messages
// without pause; the close frame goes between two of its frames, so the
// client reads a clean close 1008, not a broken frame.
func TestLiveWebSocketCutBetweenFrames(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		msg := make([]byte, 256<<10)
		for c.Write(r.Context(), websocket.MessageBinary, msg) == nil {
		}
	}))
	t.Cleanup(up.Close)
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), up.URL)
	s := e.newSession(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(e.front.URL, "http") + "/api/ws"
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"X-Sess": {s.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				read <- err
				return
			}
		}
	}()
	if _, err := e.m.End(context.Background(), s.ID, session.CauseAdmin); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != CloseSessionEnded {
			t.Fatalf("read: %v, want a clean close 1008", err)
		}
	case <-time.After(cutWithin):
		t.Fatalf("no close within %v", cutWithin)
	}
}

// TestLiveStreamAbortedOverHTTP2: over HTTP/2 the cut resets the stream;
// the client's read fails, the connection's other streams go on.
func TestLiveStreamAbortedOverHTTP2(t *testing.T) {
	gone := make(chan struct{}, 4)
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newStreamUpstream(t, gone).URL)
	front := httptest.NewUnstartedServer(e.front.Config.Handler)
	front.EnableHTTP2 = true
	front.StartTLS()
	t.Cleanup(front.Close)
	alice, bob := e.newSession(t, "alice"), e.newSession(t, "bob")
	client := front.Client()
	open := func(s *session.Session) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/api/events", nil)
		req.Header.Set("X-Sess", s.ID)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if res.ProtoMajor != 2 {
			t.Fatalf("protocol %s, want HTTP/2", res.Proto)
		}
		if _, err := res.Body.Read(make([]byte, 64)); err != nil {
			t.Fatalf("first chunk: %v", err)
		}
		return res
	}
	ra, rb := open(alice), open(bob)
	if _, err := e.m.End(context.Background(), alice.ID, session.CauseAdmin); err != nil {
		t.Fatal(err)
	}
	wantCut(t, ra, gone, "reset")
	if _, err := rb.Body.Read(make([]byte, 64)); err != nil {
		t.Fatalf("the other session's stream on the same connection: %v", err)
	}
}

// TestLiveShutdownGoingAway: at shutdown the sockets get 1001 "going
// away" (reconnect), not a dropped connection; no session-end cut is
// counted.
func TestLiveShutdownGoingAway(t *testing.T) {
	e := newLiveEnv(t, session.NewMemoryStore(session.MemoryConfig{}), newEchoWS(t).URL)
	c := e.dial(t, e.newSession(t, "alice"))
	e.live.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), cutWithin)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "going away" {
		t.Fatalf("read at shutdown: %v, want close 1001 \"going away\"", err)
	}
	if got := testutil.ToFloat64(e.live.cuts.WithLabelValues("demo", KindWebSocket)); got != 0 {
		t.Errorf("cut counter = %v, want 0", got)
	}
	if n := e.live.Len(); n != 0 {
		t.Errorf("Live.Len() = %d, want 0", n)
	}
}
