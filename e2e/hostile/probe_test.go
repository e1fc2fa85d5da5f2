package hostile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// usage is what the gateway process holds at one moment.
type usage struct {
	rss        int64 // bytes, VmRSS of /proc/<pid>/status
	fds        int   // entries of /proc/<pid>/fd
	redisConns int   // of which TCP connections to redis-server
	goroutines int   // go_goroutines on the admin listener
	liveHeap   int64 // go_memstats_alloc_bytes right after a GC (0 when not measured)
	redisKeys  int64 // DBSIZE
	redisMem   int64 // used_memory_dataset of INFO memory: the keys, not client buffers
}

// backTo says how u, measured once an attack's connections are closed,
// is still above base beyond maxGoroutineGrowth and maxFDGrowth (Redis
// connections not counted), or nil.
func (u usage) backTo(base usage) error {
	if u.goroutines > base.goroutines+maxGoroutineGrowth ||
		u.fds-u.redisConns > base.fds-base.redisConns+maxFDGrowth {
		return fmt.Errorf("goroutines %d (before %d, bound +%d), fds besides Redis %d (before %d, bound +%d)",
			u.goroutines, base.goroutines, maxGoroutineGrowth,
			u.fds-u.redisConns, base.fds-base.redisConns, maxFDGrowth)
	}
	return nil
}

func (u usage) String() string {
	return fmt.Sprintf("rss %.1f MiB, fds %d (%d to Redis), goroutines %d, live heap %.2f MiB, redis keys %d, redis dataset %.2f MiB",
		mib(u.rss), u.fds, u.redisConns, u.goroutines, mib(u.liveHeap), u.redisKeys, mib(u.redisMem))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// rss reads VmRSS of pid.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// fds counts the open file descriptors of pid.
func fds(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// connsTo counts pid's TCP connections whose remote port is port. The
// gateway's Redis client keeps a pool of connections (bounded by go-redis's
// PoolSize, 10 per GOMAXPROCS) that grows with concurrency and is not a
// leak; the bound on descriptors is stated for the others.
func connsTo(pid, port int) (int, error) {
	inodes := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(line)
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[2], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n, nil
}

// metric returns the sum of the samples of the gateway's metric name whose
// labels contain every one of labels.
func (s *stack) metric(name string, labels ...string) (float64, error) {
	res, err := http.Get(s.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
lines:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not exposed", name, labels)
	}
	return sum, nil
}

// gc makes the gateway collect its garbage: net/http/pprof's heap profile
// with gc=1 runs runtime.GC first.
func (s *stack) gc() error {
	req, _ := http.NewRequest(http.MethodGet, s.admin+"/debug/pprof/heap?gc=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof heap: %s", res.Status)
	}
	return nil
}

// measure reads everything; with heap, the live heap after a GC too.
func (s *stack) measure(t *testing.T, heap bool) usage {
	t.Helper()
	var u usage
	var err error
	if u.rss, err = rss(s.gw.Pid()); err != nil {
		t.Fatal(err)
	}
	if u.fds, err = fds(s.gw.Pid()); err != nil {
		t.Fatal(err)
	}
	if u.redisConns, err = connsTo(s.gw.Pid(), s.redisPort); err != nil {
		t.Fatal(err)
	}
	g, err := s.metric("go_goroutines")
	if err != nil {
		t.Fatal(err)
	}
	u.goroutines = int(g)
	if heap {
		// Twice: sync.Pool keeps what it held through one GC (its victim
		// cache).
		if err := errors.Join(s.gc(), s.gc()); err != nil {
			t.Fatal(err)
		}
		h, err := s.metric("go_memstats_alloc_bytes")
		if err != nil {
			t.Fatal(err)
		}
		u.liveHeap = int64(h)
	}
	ctx := context.Background()
	if u.redisKeys, err = s.rdb.DBSize(ctx).Result(); err != nil {
		t.Fatal(err)
	}
	info, err := s.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	u.redisMem, _ = strconv.ParseInt(info["Memory"]["used_memory_dataset"], 10, 64)
	return u
}

// sampler records the peaks of the gateway's RSS, descriptors and
// goroutines while an attack runs.
type sampler struct {
	mu   sync.Mutex
	peak usage
	stop chan struct{}
	done chan struct{}
}

func (s *stack) sample(every time.Duration) *sampler {
	sm := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sm.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			r, _ := rss(s.gw.Pid())
			n, _ := fds(s.gw.Pid())
			g, _ := s.metric("go_goroutines")
			sm.mu.Lock()
			sm.peak.rss = max(sm.peak.rss, r)
			sm.peak.fds = max(sm.peak.fds, n)
			sm.peak.goroutines = max(sm.peak.goroutines, int(g))
			sm.mu.Unlock()
			select {
			case <-sm.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return sm
}

// end stops sampling and returns the peaks.
func (sm *sampler) end() usage {
	close(sm.stop)
	<-sm.done
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.peak
}

// tempFiles lists what is in dir.
func tempFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}
