//go:build loadbench

package load

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// closedResult is one closed-loop run: throughput and latency percentiles.
type closedResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int           // non-2xx responses and socket errors
	requests int64         // requests answered in the run
	cpu      time.Duration // the target process's CPU (utime+stime) over the run; -1 unknown
}

// cpuPerRequest is the target process's CPU per answered request, or -1.
func (r closedResult) cpuPerRequest() time.Duration {
	if r.cpu < 0 || r.requests == 0 {
		return -1
	}
	return r.cpu / time.Duration(r.requests)
}

// useWrk says whether the closed-loop generator is wrk (Debian's package)
// rather than the Go one.
func useWrk() bool {
	switch generator {
	case "go":
		return false
	case "wrk":
		return true
	}
	_, err := exec.LookPath("wrk")
	return err == nil
}

// closedLoop keeps `connections` requests in flight against tg for d,
// and measures the CPU tg's process used meanwhile.
func closedLoop(tg target, d time.Duration) (closedResult, error) {
	m := startCPU(tg.pid)
	var r closedResult
	var err error
	if useWrk() {
		r, err = runWrk(tg, d)
	} else {
		r, err = goClosedLoop(tg, d)
	}
	r.cpu = m.used()
	return r, err
}

// wrkCommand is the wrk command line for tg (also printed in the docs).
func wrkCommand(tg target, d time.Duration) []string {
	args := []string{"wrk", "-t1", fmt.Sprintf("-c%d", connections), fmt.Sprintf("-d%ds", max(1, int(d.Seconds()))), "--latency"}
	for _, h := range tg.headers {
		args = append(args, "-H", h)
	}
	return append(args, tg.url)
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkCount   = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

func runWrk(tg target, d time.Duration) (closedResult, error) {
	args := wrkCommand(tg, d)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return closedResult{}, fmt.Errorf("wrk %s: %v: %s", tg.name, err, out)
	}
	var r closedResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk %s: no Requests/sec in: %s", tg.name, out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := wrkCount.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		r.errors += n
	}
	if m := wrkSockErr.FindSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(string(s))
			r.errors += n
		}
	}
	for _, m := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		if string(m[1]) == "50" {
			r.p50 = time.Duration(v * float64(unit))
		} else {
			r.p99 = time.Duration(v * float64(unit))
		}
	}
	return r, nil
}

// newClient returns a keep-alive client for up to n connections to one host.
func newClient(n int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: n, DisableCompression: true, IdleConnTimeout: 30 * time.Second,
	}}
}

// do sends one GET with tg's headers and reports success (200).
func do(c *http.Client, tg target) bool {
	req, _ := http.NewRequest(http.MethodGet, tg.url, nil)
	for _, h := range tg.headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header[k] = []string{v}
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// goClosedLoop is the fallback closed-loop generator: `connections`
// goroutines, each sending its next request when the last one is answered.
func goClosedLoop(tg target, d time.Duration) (closedResult, error) {
	c := newClient(connections)
	defer c.CloseIdleConnections()
	var ok, bad atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range connections {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if do(c, tg) {
					ok.Add(1)
					mine = append(mine, time.Since(t0))
				} else {
					bad.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	p50, p99 := percentiles(lat)
	return closedResult{rps: float64(ok.Load()) / elapsed.Seconds(), p50: p50, p99: p99, errors: int(bad.Load()), requests: ok.Load() + bad.Load()}, nil
}

// openWorkers bounds the open-loop generator's requests in flight.
const openWorkers = 512

// openResult is one open-loop run at a fixed rate.
type openResult struct {
	rate     float64       // requests per second asked for
	achieved float64       // requests per second completed
	count    int           // requests completed
	cpu      time.Duration // the target's CPU over the run, when measured (else 0)
	p50, p99 time.Duration
	errors   int
}

// openLoop sends requests at a constant rate for d, whatever the answers'
// latency (no coordinated omission): a dispatcher releases every request
// whose time has come (Go timers wake about every millisecond, so
// requests leave in 1 ms batches), and up to openWorkers send them on c's
// keep-alive connections (one client per target, kept across rounds). A
// request's latency runs from its release to the end of its response, so
// waiting for a free worker counts.
func openLoop(c *http.Client, tg target, rate float64, d time.Duration) openResult {
	jobs := make(chan time.Time, openWorkers)
	var bad atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, int(rate*d.Seconds())+1)
	var wg sync.WaitGroup
	for range openWorkers {
		wg.Go(func() {
			for released := range jobs {
				if do(c, tg) {
					l := time.Since(released)
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
				} else {
					bad.Add(1)
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	n := int(d / interval)
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- time.Now()
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	p50, p99 := percentiles(lat)
	return openResult{rate: rate, achieved: float64(len(lat)) / elapsed.Seconds(), count: len(lat), p50: p50, p99: p99, errors: int(bad.Load())}
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[min(len(d)-1, len(d)*99/100)]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
