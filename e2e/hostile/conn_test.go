package hostile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// The connection limits of the gateway under test, and the traffic.
const (
	// testMaxConnections leaves room for every stream and slow body below
	// plus the genuine user's requests, so that these are not queued.
	testMaxConnections = 160
	// Streams: 3 users with 3 sessions each ask for 10 streams per
	// session. The per-session cap (8, fixed) and the per-user cap below
	// would grant 3×16 = 48; the global cap grants testMaxStreams.
	testMaxStreams, testMaxStreamsPerUser = 40, 16
	streamUsers, sessionsPerUser          = 3, 3
	streamsPerSession                     = 10
	// slowBodies are connections that send the headers of a POST and
	// then 10 bytes of a body announced longer, and nothing more: half to
	// a proxied API as alice (1 MiB announced; each would hold an upstream
	// connection), half to the back-channel endpoint (2,000 bytes, under
	// its cap).
	slowBodies = 100
	// testBodyReadTimeout is server.body_read_timeout for the test (the
	// default is 30s): the slow bodies must be closed by then, give or
	// take maxCloseLag on a loaded machine.
	testBodyReadTimeout = time.Second
	maxCloseLag         = 4 * time.Second
)

// TestHostileConnections holds event streams up to every cap and opens
// slow request bodies, while a genuine user and the admin listener must
// still answer; then the slow bodies must be seen closed, and once the
// streams end, the gateway's goroutines and descriptors are back where
// they were.
func TestHostileConnections(t *testing.T) {
	s := startStack(t, fmt.Sprintf(`max_connections = %d
body_read_timeout = %q
max_event_streams = %d
max_event_streams_per_user = %d
`, testMaxConnections, testBodyReadTimeout, testMaxStreams, testMaxStreamsPerUser))
	began := time.Now()

	// The attackers' sessions, and alice's.
	var cookies [][]string // per user, per session
	for u := range streamUsers {
		s.op.SetUser(fmt.Sprintf("mallory-%d", u), nil)
		var per []string
		for range sessionsPerUser {
			b := s.newBrowser()
			if err := b.login("/"); err != nil {
				t.Fatal(err)
			}
			per = append(per, b.cookieHeader("/bff/events"))
			b.c.CloseIdleConnections()
		}
		cookies = append(cookies, per)
	}
	s.op.SetUser("alice", nil)
	alice := s.newBrowser()
	if err := alice.login("/"); err != nil {
		t.Fatal(err)
	}
	alice.c.CloseIdleConnections()
	base := s.measure(t, false)
	t.Logf("before: %v", base)

	// Event streams, up to every cap.
	var streams []net.Conn
	defer func() {
		for _, c := range streams {
			c.Close()
		}
	}()
	codes := map[int]int{}
	perUser := make([]int, streamUsers)
	for u, per := range cookies {
		for si, cookie := range per {
			granted := 0
			for range streamsPerSession {
				conn, code, err := s.openStream(cookie)
				if err != nil {
					t.Fatalf("stream for user %d session %d: %v", u, si, err)
				}
				codes[code]++
				if conn != nil {
					streams = append(streams, conn)
					granted++
				}
			}
			if granted > 8 {
				t.Errorf("user %d session %d holds %d streams, cap 8", u, si, granted)
			}
			perUser[u] += granted
		}
		if perUser[u] > testMaxStreamsPerUser {
			t.Errorf("user %d holds %d streams, cap %d", u, perUser[u], testMaxStreamsPerUser)
		}
	}
	asked := streamUsers * sessionsPerUser * streamsPerSession
	if len(streams) != testMaxStreams || codes[http.StatusOK]+codes[http.StatusTooManyRequests]+codes[http.StatusServiceUnavailable] != asked ||
		codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("streams: %d open of %d asked (answers %v), want %d open and the rest 429 or 503, some 503",
			len(streams), asked, codes, testMaxStreams)
	}
	if n, err := s.metric("bffgate_event_streams_rejected_total"); err != nil || int(n) != asked-len(streams) {
		t.Errorf("bffgate_event_streams_rejected_total = %v (%v), want %d", n, err, asked-len(streams))
	}

	// Slow bodies, on top of the streams.
	type closed struct {
		after time.Duration
		err   error
	}
	results := make(chan closed, slowBodies)
	var wg sync.WaitGroup
	aliceCookie := alice.cookieHeader("/api/hello")
	slowStart := time.Now()
	for i := range slowBodies {
		path, length := "/api/hello", 1<<20
		extra := "X-CSRF: 1\r\nCookie: " + aliceCookie + "\r\nContent-Type: application/octet-stream"
		if i%2 == 1 {
			path, length, extra = "/bff/backchannel-logout", 2000, "Content-Type: application/x-www-form-urlencoded"
		}
		conn, err := net.Dial("tcp", s.gwAddr)
		if err != nil {
			t.Fatalf("slow body %d: %v", i, err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\nContent-Length: %d\r\n\r\nlogout_tok", path, s.gwAddr, extra, length)
		wg.Go(func() {
			err := waitClosed(conn, testBodyReadTimeout+maxCloseLag+time.Second)
			results <- closed{time.Since(slowStart), err}
		})
	}

	// While both are held: the genuine user, the admin listener.
	if code, u, err := alice.user(); err != nil || code != http.StatusOK || u["sub"] != "alice" {
		t.Errorf("alice's /bff/user during the attack: %d %v %v", code, u, err)
	}
	if code, _, body, err := alice.get("/api/hello"); err != nil || code != http.StatusOK {
		t.Errorf("alice's API call during the attack: %d %s %v", code, body, err)
	}
	if code, _, _, err := alice.get("/bff/events"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("alice's event stream while the replica is full: %d %v, want 503", code, err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if err := httpOK(s.admin + p)(); err != nil {
			t.Errorf("admin listener during the attack: %v", err)
		}
	}
	if n, err := s.metric("bffgate_event_streams"); err != nil || int(n) != testMaxStreams {
		t.Errorf("bffgate_event_streams = %v (%v), want %d", n, err, testMaxStreams)
	}
	peak := s.measure(t, false)

	wg.Wait()
	close(results)
	var slowest time.Duration
	for r := range results {
		slowest = max(slowest, r.after)
		if r.err != nil {
			t.Errorf("slow body: %v", r.err)
		}
	}
	if slowest > testBodyReadTimeout+maxCloseLag {
		t.Errorf("the last slow body was closed after %v, bound %v", slowest, testBodyReadTimeout+maxCloseLag)
	}
	if n, err := s.metric("bffgate_http_body_timeouts_total"); err != nil || n < slowBodies {
		t.Errorf("bffgate_http_body_timeouts_total = %v (%v), want at least %d", n, err, slowBodies)
	}

	// The streams end; everything is back where it was.
	for _, c := range streams {
		c.Close()
	}
	alice.c.CloseIdleConnections()
	var after usage
	if err := eventually(10*time.Second, func() error {
		after = s.measure(t, false)
		if err := after.backTo(base); err != nil {
			return err
		}
		if n, err := s.metric("bffgate_event_streams"); err != nil || n != 0 {
			return fmt.Errorf("bffgate_event_streams = %v (%v), want 0", n, err)
		}
		return nil
	}); err != nil {
		t.Errorf("after the attack: %v", err)
	}
	t.Logf("streams: %d open of %d asked, answers %v", len(streams), asked, codes)
	t.Logf("held:  %v", peak)
	t.Logf("slow bodies: %d, the last closed after %v (body_read_timeout %v)", slowBodies, slowest.Round(time.Millisecond), testBodyReadTimeout)
	t.Logf("after: %v", after)
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// openStream asks for /bff/events with cookie. On 200 it returns the
// connection, held open; otherwise the status, the connection closed.
func (s *stack) openStream(cookie string) (net.Conn, int, error) {
	conn, err := net.DialTimeout("tcp", s.gwAddr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /bff/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nX-CSRF: 1\r\nCookie: %s\r\n\r\n", s.gwAddr, cookie)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if res.StatusCode != http.StatusOK {
		conn.Close()
		return nil, res.StatusCode, nil
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, http.StatusOK, nil
}

// waitClosed reads conn until the server closes it (whatever it answers
// first), or fails after d.
func waitClosed(conn net.Conn, d time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open after %v", d)
	}
	return nil // EOF (nil from io.Copy) or a reset: closed
}
