//go:build loadbench

package load

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
)

// The open /bff/events streams figure (issue 15): streamCount streams
// over real TCP to the built binary, streamsPerSession per signed-in
// session (the gateway refuses more than 8 per session).
var (
	streamCount       = envInt("BFFGATE_LOAD_STREAMS", 10000)
	streamsPerSession = envInt("BFFGATE_LOAD_STREAMS_PER_SESSION", 5)
	streamLogouts     = envInt("BFFGATE_LOAD_STREAM_LOGOUTS", 100)
	restDur           = envDuration("BFFGATE_LOAD_REST", 10*time.Second)
)

// streamsResult is what the streams run measured.
type streamsResult struct {
	streams, sessions, perSession int
	fdLimit, gatewayFDLimit       uint64
	rssBefore, rssAfter           int64 // KiB, VmRSS of the gateway
	memBefore, memAfter, memEnd   promSample
	restCPU                       time.Duration // the gateway's CPU over restFor, all streams open
	restFor                       time.Duration
	push                          []time.Duration // per logout: back-channel request sent → the last of its tabs has the event
	ack                           []time.Duration // per logout: back-channel request sent → its 200 read
	beforeAck                     int             // tabs that had the event before the client read the 200
	othersEnded                   int             // streams of other sessions that ended meanwhile
	stillOpen                     int             // streams open at the end
	reason                        string          // why the run stopped short, or ""
}

// perStreamKiB is the gateway's RSS growth per open stream.
func (r *streamsResult) perStreamKiB() float64 {
	return float64(r.rssAfter-r.rssBefore) / float64(r.streams)
}

// sseStream is one open stream, read by its own goroutine.
type sseStream struct {
	conn   net.Conn
	body   io.Reader // the chunked event stream, read from conn
	victim int       // index of its session among the victims, or -1
}

// streamSet is every open stream and what the readers saw.
type streamSet struct {
	streams []*sseStream
	// got[i] receives the time each tab of victim session i read its
	// logout event.
	got       []chan time.Time
	closing   atomic.Bool
	unexpEnds atomic.Int64 // streams that ended without a logout of their own
	wg        sync.WaitGroup
}

// measureStreams runs the streams figure against g (memory store, its
// caps raised), whose sessions come from op. The victims' sids are
// needed for their logout tokens, so they sign in one at a time.
func measureStreams(op *testop.OP, g *gateway) (res streamsResult) {
	res.perSession = min(streamsPerSession, streamCount)
	res.sessions = (streamCount + res.perSession - 1) / res.perSession
	victims := min(streamLogouts, res.sessions)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		res.fdLimit = rl.Cur
	}
	res.gatewayFDLimit = procFDLimit(g.proc.Pid())
	if need := uint64(streamCount + 200); res.fdLimit < need || res.gatewayFDLimit < need {
		res.reason = fmt.Sprintf("RLIMIT_NOFILE too low: %d here, %d in the gateway, %d needed (raise the hard limit: ulimit -Hn)", res.fdLimit, res.gatewayFDLimit, need)
		return res
	}

	// Sessions: the victims one at a time (for their sid), the rest in
	// parallel.
	cookies := make([]string, res.sessions)
	sids := make([]string, victims)
	for i := range victims {
		ck, _, err := g.loginSession(nil)
		if err != nil {
			res.reason = err.Error()
			return res
		}
		cookies[i], sids[i] = ck, op.LastSID()
	}
	if err := parallel(res.sessions-victims, 8, func(i int) error {
		ck, _, err := g.loginSession(nil)
		cookies[victims+i] = ck
		return err
	}); err != nil {
		res.reason = "sign-in: " + err.Error()
		return res
	}

	pid := g.proc.Pid()
	res.rssBefore = settledRSS(pid)
	res.memBefore = scrapeMemory(g.admin)

	set := &streamSet{got: make([]chan time.Time, victims)}
	for i := range set.got {
		set.got[i] = make(chan time.Time, res.perSession)
	}
	defer set.closeAll()
	set.streams = make([]*sseStream, streamCount)
	addr := strings.TrimPrefix(g.public, "http://")
	if err := parallel(streamCount, 32, func(i int) error {
		sess := i / res.perSession
		victim := -1
		if sess < victims {
			victim = sess
		}
		s, err := openStream(addr, cookies[sess], victim)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		set.streams[i] = s
		set.wg.Add(1)
		go set.read(s)
		return nil
	}); err != nil {
		res.reason = "opening the streams: " + err.Error()
		return res
	}
	res.streams = streamCount
	res.rssAfter = settledRSS(pid)
	res.memAfter = scrapeMemory(g.admin)

	m := startCPU(pid)
	t0 := time.Now()
	time.Sleep(restDur) // the measurement is of nothing happening
	res.restCPU, res.restFor = m.used(), time.Since(t0)

	c := newClient(1)
	defer c.CloseIdleConnections()
	for i := range victims {
		tok := op.Sign(op.LogoutToken(func(m map[string]any) { m["sid"] = sids[i] }), testop.SignOpts{})
		sent := time.Now()
		resp, err := c.PostForm(g.public+"/bff/backchannel-logout", url.Values{"logout_token": {tok}})
		if err != nil {
			res.reason = "back-channel: " + err.Error()
			return res
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		acked := time.Now()
		if resp.StatusCode != http.StatusOK {
			res.reason = fmt.Sprintf("back-channel: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			return res
		}
		var last time.Time
		for range res.perSession {
			select {
			case at := <-set.got[i]:
				if at.Before(acked) {
					res.beforeAck++
				}
				if at.After(last) {
					last = at
				}
			case <-time.After(5 * time.Second):
				res.reason = fmt.Sprintf("logout %d: a tab had no logout event 5 s after the back-channel 200", i+1)
				return res
			}
		}
		res.push = append(res.push, last.Sub(sent))
		res.ack = append(res.ack, acked.Sub(sent))
	}
	res.othersEnded = int(set.unexpEnds.Load())
	res.stillOpen = streamCount - victims*res.perSession - res.othersEnded
	// The gateway's own count, once it has let the ended streams go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		res.memEnd = scrapeMemory(g.admin)
		if !res.memEnd.ok || int(res.memEnd.streams) == res.stillOpen || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return res
}

// openStream dials the gateway and opens GET /bff/events with cookie; it
// returns once the 200 and its first bytes are in.
func openStream(addr, cookie string, victim int) (*sseStream, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /bff/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCookie: %s\r\n\r\n", addr, cookie)
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &sseStream{conn: conn, body: resp.Body, victim: victim}, nil
}

// read reads s's events until it ends: a logout is timed (for a victim)
// and ends the stream; any other end is counted, unless closing.
func (set *streamSet) read(s *sseStream) {
	defer set.wg.Done()
	lines := bufio.NewReaderSize(s.body, 256)
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if !set.closing.Load() {
				set.unexpEnds.Add(1)
			}
			return
		}
		if bytes.HasPrefix(line, []byte("event: logout")) {
			at := time.Now()
			if s.victim >= 0 {
				set.got[s.victim] <- at
			} else if !set.closing.Load() {
				set.unexpEnds.Add(1)
			}
			s.conn.Close()
			return
		}
	}
}

// closeAll closes every stream and waits for the readers.
func (set *streamSet) closeAll() {
	set.closing.Store(true)
	for _, s := range set.streams {
		if s != nil {
			s.conn.Close()
		}
	}
	set.wg.Wait()
}

// parallel runs f(0..n-1) on `workers` goroutines; the first error stops
// the handing out of further work and is returned.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err; failed.Store(true) })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
