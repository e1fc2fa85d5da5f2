//go:build loadbench

package load

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// promSample is what the gateway's own /metrics (admin listener, Go
// collector) says about its memory: beside VmRSS, it tells the heap from
// the goroutine stacks.
type promSample struct {
	ok                             bool
	heapInuse, stackInuse, streams float64 // bytes, bytes, open event streams
	goroutines                     float64
}

// scrapeMemory reads the gateway's /metrics at admin ("host:port").
func scrapeMemory(admin string) promSample {
	var s promSample
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s
	}
	want := map[string]*float64{
		"go_memstats_heap_inuse_bytes":  &s.heapInuse,
		"go_memstats_stack_inuse_bytes": &s.stackInuse,
		"go_goroutines":                 &s.goroutines,
		"bffgate_event_streams":         &s.streams,
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if p := want[name]; p != nil {
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				*p += v // summed over labels
				s.ok = true
			}
		}
	}
	return s
}
