package session_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bffgate/bffgate/session"
)

// subProxy is a TCP proxy to Redis that can cut, or silently freeze, the
// connections on which a client subscribed, and keep new subscriptions
// from working; other connections pass.
type subProxy struct {
	ln     net.Listener
	target string

	done chan struct{} // closed at the end of the test

	mu     sync.Mutex
	subs   map[net.Conn]*frozen // client side of the subscribed connections
	refuse bool                 // close a connection as soon as it subscribes
}

type frozen struct{ ch chan struct{} } // closed: forwarding stops

func newSubProxy(t *testing.T, target string) *subProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &subProxy{ln: ln, target: target, subs: map[net.Conn]*frozen{}, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.mu.Lock()
		for c := range p.subs {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *subProxy) addr() string { return p.ln.Addr().String() }

func (p *subProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		f := &frozen{ch: make(chan struct{})}
		go p.pipe(c, s, f, true)
		go p.pipe(s, c, f, false)
	}
}

// pipe copies from src to dst until either fails, or stops forwarding
// (without closing) once f is frozen.
func (p *subProxy) pipe(src, dst net.Conn, f *frozen, fromClient bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && fromClient && bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
			p.mu.Lock()
			p.subs[src] = f
			refuse := p.refuse
			p.mu.Unlock()
			if refuse {
				return
			}
		}
		select {
		case <-f.ch:
			<-p.done // frozen: never forward again
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes the subscribed connections; with refuse, new ones are
// closed as they subscribe, until cut(false).
func (p *subProxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	for c := range p.subs {
		c.Close()
		delete(p.subs, c)
	}
}

// freeze stops forwarding on the subscribed connections, without closing
// them: a silent drop.
func (p *subProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, f := range p.subs {
		close(f.ch)
		delete(p.subs, c)
	}
}

// proxiedReplicas returns replica A on a direct client and replica B on
// a client through a subProxy, on a server of their own.
func proxiedReplicas(t *testing.T, ttl time.Duration) (a, b *cachedReplica, p *subProxy) {
	t.Helper()
	srv := ownRedis(t)
	rdbA, err := session.NewRedisClient(session.Config{RedisURL: srv.URL(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdbA.Close() })
	p = newSubProxy(t, rdbA.(*redis.Client).Options().Addr)
	rdbB := redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: 1, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { rdbB.Close() })
	return newCachedReplica(t, rdbA, ttl), newCachedReplica(t, rdbB, ttl), p
}

func newTestSession(app, n string) *session.Session {
	return &session.Session{ID: session.NewID(), App: app, Issuer: "https://idp.example",
		Subject: "sub-" + n, SID: "sid-" + n, AccessToken: "at1", RefreshToken: "rt1"}
}

// TestRedisCacheBypassWhileUnsubscribed keeps B's subscription down (its
// connection cut, and every new one cut as it subscribes): a session A
// ends is refused by B as soon as A's call returns, and every read at B
// goes to Redis (bypass) until B has subscribed again; then B caches
// again.
func TestRedisCacheBypassWhileUnsubscribed(t *testing.T) {
	ctx := context.Background()
	const ttl = 200 * time.Millisecond
	a, b, p := proxiedReplicas(t, ttl)
	app := "bypass-" + session.NewID()[:6]
	s1, s2 := newTestSession(app, "1"), newTestSession(app, "2")
	for _, s := range []*session.Session{s1, s2} {
		if err := a.st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	b.cached(t, s1)

	p.cut(true)
	if _, err := a.st.RevokeSID(ctx, app, s1.Issuer, s1.SID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	checkSeen(t, b.st, s1.ID, nil, "RevokeSID with B's subscription down")
	hits, bypass := cacheCount(t, b.reg, "hit"), cacheCount(t, b.reg, "bypass")
	for range 5 {
		checkSeen(t, b.st, s2.ID, s2, "a live session with B's subscription down")
	}
	if h, by := cacheCount(t, b.reg, "hit"), cacheCount(t, b.reg, "bypass"); h != hits || by != bypass+5 {
		t.Errorf("5 reads at B with its subscription down: %v hits, %v bypasses; want 0 and 5", h-hits, by-bypass)
	}
	if cacheHealthy(t, b.reg) {
		t.Error("bffgate_session_cache_healthy is 1 with B's subscription down")
	}

	p.cut(false)
	b.cached(t, s2) // subscribed again
	if _, err := a.st.Delete(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	checkSeen(t, b.st, s2.ID, nil, "Delete once B subscribed again")
}

// TestRedisCacheSilentDrop freezes B's subscriber connection without
// closing it (a silent drop: no error, no message): a session A ends is
// refused by B as soon as A's call returns, since B's own heartbeats
// stopped coming back; B then notices the silence, subscribes again and
// caches again.
func TestRedisCacheSilentDrop(t *testing.T) {
	ctx := context.Background()
	const ttl = 200 * time.Millisecond
	a, b, p := proxiedReplicas(t, ttl)
	app := "silent-" + session.NewID()[:6]
	s1, s2 := newTestSession(app, "1"), newTestSession(app, "2")
	for _, s := range []*session.Session{s1, s2} {
		if err := a.st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	b.cached(t, s1)

	p.freeze()
	if _, _, err := a.st.ReplaceTokens(ctx, s1.ID, "rt1", session.Tokens{AccessToken: "at-new", RefreshToken: "rt-new"}); err != nil {
		t.Fatal(err)
	}
	checkSeen(t, b.st, s1.ID, &session.Session{AccessToken: "at-new", RefreshToken: "rt-new"}, "ReplaceTokens with B's subscription frozen")
	if _, err := a.st.Delete(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	checkSeen(t, b.st, s1.ID, nil, "Delete with B's subscription frozen")

	b.cached(t, s2) // noticed the silence and subscribed again
	if _, err := a.st.RevokeSub(ctx, app, s2.Issuer, s2.Subject, time.Now()); err != nil {
		t.Fatal(err)
	}
	checkSeen(t, b.st, s2.ID, nil, "RevokeSub once B subscribed again")
	if n := cacheCount(t, b.reg, "hit"); n == 0 {
		t.Error("no cache hit at B")
	}
}
