package bff

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
)

// opTimer times the test OP's handler and counts the connections the OP
// was reached over, so that a callback's time splits into the IdP's and
// the gateway's own. Callbacks timed with it run one at a time.
//
// With mem set, it also counts the heap allocations made while the OP's
// handler runs (runtime.ReadMemStats around it, as testing.AllocsPerRun
// does), so that a callback's allocations split the same way: the
// gateway waits for the OP's answer meanwhile.
type opTimer struct {
	mem            bool
	mu             sync.Mutex
	spent          time.Duration
	mallocs, bytes uint64
	calls          map[string]int             // by path
	conns          map[string]map[string]bool // remote addresses by path
}

func newOPTimer() *opTimer {
	return &opTimer{calls: map[string]int{}, conns: map[string]map[string]bool{}}
}

// wrap is testop.Config.Wrap.
func (o *opTimer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m0, m1 runtime.MemStats
		if o.mem {
			runtime.ReadMemStats(&m0)
		}
		t0 := time.Now()
		next.ServeHTTP(w, r)
		d := time.Since(t0)
		if o.mem {
			runtime.ReadMemStats(&m1)
		}
		o.mu.Lock()
		o.spent += d
		o.mallocs += m1.Mallocs - m0.Mallocs
		o.bytes += m1.TotalAlloc - m0.TotalAlloc
		o.calls[r.URL.Path]++
		if o.conns[r.URL.Path] == nil {
			o.conns[r.URL.Path] = map[string]bool{}
		}
		o.conns[r.URL.Path][r.RemoteAddr] = true
		o.mu.Unlock()
	})
}

// reset forgets everything counted so far.
func (o *opTimer) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spent, o.mallocs, o.bytes = 0, 0, 0
	clear(o.calls)
	clear(o.conns)
}

// take returns the OP's handler time since the last take and resets it.
func (o *opTimer) take() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.spent
	o.spent = 0
	return d
}

// allocs returns the heap allocations (objects, bytes) made in the OP's
// handler since the last reset (with mem set).
func (o *opTimer) allocs() (objects, bytes uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mallocs, o.bytes
}

// counts returns the OP's requests by path since the last reset, and
// the connections the requests to paths came over.
func (o *opTimer) counts(paths ...string) (map[string]int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	calls := make(map[string]int, len(o.calls))
	for k, v := range o.calls {
		calls[k] = v
	}
	conns := map[string]bool{}
	for _, p := range paths {
		for addr := range o.conns[p] {
			conns[addr] = true
		}
	}
	return calls, len(conns)
}

// idpClient is the gateway's IdP client as cmd/bffgate builds it
// (upstream.NewTransport's defaults that matter here: keep-alive, 64
// idle connections per host).
func idpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
}

// loginHarness is a gateway without login rate limits in front of a
// test OP timed by an opTimer.
func loginHarness(t testing.TB, mutate func(*AppConfig)) (*harness, *opTimer) {
	t.Helper()
	clock := newOPTimer()
	h := newHarness(t, harnessOpts{op: testop.Config{Wrap: clock.wrap}, server: noLoginLimit, idp: idpClient(), mutate: mutate})
	return h, clock
}

// pendingCallback returns a callback request the OP sent a browser back
// with, after a login it started: the callback URL with its code and
// state, and the browser's login-state cookie.
func (h *harness) pendingCallback() *http.Request {
	h.t.Helper()
	c := h.browser()
	resp := h.get(c, h.startLogin(c, "/after"))
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, h.srv.URL+"/bff/callback?") {
		h.t.Fatalf("authorize sent the browser to %q, want the callback", loc)
	}
	req := httptest.NewRequest(http.MethodGet, u.RequestURI(), nil)
	req.Host = u.Host
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	return req
}

// callbackOK serves req on the gateway in process and fails unless it
// ends in a session.
func (h *harness) callbackOK(req *http.Request) {
	w := httptest.NewRecorder()
	h.gw.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/after" || !strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), "\n"), "bffgate-demo=") {
		h.t.Fatalf("callback: status %d, Location %q: %s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
}

// BenchmarkLoginCallback measures GET /bff/callback served in process:
// the state check, the code exchange at the in-process test OP over
// loopback, the ID token's verification, the session's creation and its
// cookie. ns/op includes the OP's handler (it signs an RS256 ID token per
// login); gw-ns/op, gw-p50-ns and gw-p99-ns are the gateway's own time
// (the OP's handler time subtracted); op-conns is how many connections
// the OP saw over all logins (1 with keep-alive); gw-allocs/op and
// gw-B/op are the allocations outside the OP's handler (the gateway's,
// and net/http's on both sides of the loopback); cpu-ns/op is the CPU
// time the whole process spent per login, OP included (steadier than
// wall time on a shared machine).
func BenchmarkLoginCallback(b *testing.B) {
	for _, ui := range []bool{false, true} {
		name := "id_token"
		if ui {
			name = "userinfo"
		}
		b.Run(name, func(b *testing.B) {
			h, clock := loginHarness(b, func(a *AppConfig) { a.UserInfo = ui })
			clock.mem = true
			h.callbackOK(h.pendingCallback()) // warm: JWKS and the first connection
			reqs := make([]*http.Request, b.N)
			for i := range reqs {
				reqs[i] = h.pendingCallback()
			}
			clock.reset()
			own := make([]time.Duration, b.N)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := cpuTime(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i, req := range reqs {
				t0 := time.Now()
				h.callbackOK(req)
				own[i] = time.Since(t0) - clock.take()
			}
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			runtime.ReadMemStats(&m1)
			var sum time.Duration
			for _, d := range own {
				sum += d
			}
			slices.Sort(own)
			_, conns := clock.counts("/token", "/userinfo", "/jwks")
			opObjects, opBytes := clock.allocs()
			n := float64(b.N)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs-opObjects)/n, "gw-allocs/op")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc-opBytes)/n, "gw-B/op")
			b.ReportMetric(float64(sum.Nanoseconds())/n, "gw-ns/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/op")
			b.ReportMetric(float64(own[b.N/2].Nanoseconds()), "gw-p50-ns")
			b.ReportMetric(float64(own[(b.N*99)/100].Nanoseconds()), "gw-p99-ns")
			b.ReportMetric(float64(conns), "op-conns")
		})
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
