//go:build loadbench

package load

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
)

// dpopTarget signs a user in at the DPoP gateway (E) and makes sure the
// test OP bound the session's tokens to its key (a proof came with the
// code exchange), so that E's calls carry "Authorization: DPoP" and a
// fresh proof, which the upstream requires of a DPoP token.
func dpopTarget(op *testop.OP, g *gateway) (target, error) {
	before := len(op.DPoPProofs())
	if _, err := g.login(); err != nil {
		return target{}, fmt.Errorf("DPoP gateway: %w", err)
	}
	bound := false
	for _, p := range op.DPoPProofs()[before:] {
		bound = bound || (p.Endpoint == "token" && p.JKT != "")
	}
	if !bound {
		return target{}, errors.New("DPoP gateway: the code exchange carried no DPoP proof, so its tokens are not bound")
	}
	return g.target("E", "bffgate, memory store, DPoP"), nil
}

// dpopAdded is, per round, E's CPU per request minus C's in the same
// round (adjacent in time): what DPoP adds to an API call.
func (r *report) dpopAdded() []float64 {
	var v []float64
	for i, e := range r.closed["E"] {
		if i < len(r.closed["C"]) {
			a, c := e.cpuPerRequest(), r.closed["C"][i].cpuPerRequest()
			if a >= 0 && c >= 0 {
				v = append(v, float64(a-c))
			}
		}
	}
	return v
}

// ratiosTo is, per round, f(key's result) ÷ f(base's result in that round).
func (r *report) ratiosTo(key, base string, f func(closedResult) float64) []float64 {
	var v []float64
	for i, c := range r.closed[key] {
		if i < len(r.closed[base]) {
			a, b := f(c), f(r.closed[base][i])
			if a >= 0 && b > 0 {
				v = append(v, a/b)
			}
		}
	}
	return v
}

// dpopEqualRate is what DPoP adds to an API call at one request rate:
// in a closed loop E serves about half C's requests, and per-request
// costs that do not depend on DPoP (the client's wake-up charged to each
// response, syscalls that batch less) grow as the throughput falls, so
// E − C there is more than DPoP's own cost.
type dpopEqualRate struct {
	rate  float64   // requests per second, C and E alike
	added []float64 // per round, E's CPU per request − C's, in ns
}

// measureDPoPEqualRate runs the open loop on C and on E at rate (half
// E's capacity), rounds interleaved, and reads each target's CPU per
// request.
func measureDPoPEqualRate(c, e target, rate float64) (dpopEqualRate, error) {
	res := dpopEqualRate{rate: rate}
	clients := map[string]*http.Client{c.key: newClient(openWorkers), e.key: newClient(openWorkers)}
	for _, cl := range clients {
		defer cl.CloseIdleConnections()
	}
	perRequest := func(tg target) (float64, error) {
		m := startCPU(tg.pid)
		r := openLoop(clients[tg.key], tg, rate, roundDur)
		cpu := m.used()
		switch {
		case r.errors > 0:
			return 0, fmt.Errorf("%s at %.0f/s: %d errors", tg.key, rate, r.errors)
		case cpu < 0 || r.count == 0:
			return 0, errors.New("/proc/<pid>/stat unreadable")
		}
		return float64(cpu) / float64(r.count), nil
	}
	for _, tg := range []target{c, e} {
		openLoop(clients[tg.key], tg, rate, warmupDur)
	}
	for range rounds {
		cc, err := perRequest(c)
		if err != nil {
			return res, err
		}
		ec, err := perRequest(e)
		if err != nil {
			return res, err
		}
		res.added = append(res.added, ec-cc)
	}
	return res, nil
}

// proofsBeside is how many proofs proofBeside signs: about a second of
// CPU, well inside its load.
const proofsBeside = 20000

// proofBeside is one DPoP proof's CPU measured as E's proofs meet it:
// with the machine under the same load. BenchmarkProof (one goroutine,
// proofsBeside proofs) runs as a process of its own while C serves the
// open loop of measureDPoPEqualRate, and its CPU (user + system, from
// the kernel's accounting of the process) is divided by the proofs. A
// quiet BenchmarkProof reads lower: caches and cores are shared with the
// load, as they are for the gateway's proofs.
func proofBeside(c target, rate float64) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "bffgate-load-proof-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dpop.test")
	build := exec.Command(goCmd(), "test", "-c", "-o", bin, "./internal/dpop")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build the proof benchmark: %v\n%s", err, out)
	}
	client := newClient(openWorkers)
	defer client.CloseIdleConnections()
	loaded := make(chan openResult, 1)
	go func() { loaded <- openLoop(client, c, rate, 6*time.Second) }()
	<-time.After(time.Second) // the load is running
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", "^BenchmarkProof$",
		"-test.benchtime", fmt.Sprintf("%dx", proofsBeside), "-test.cpu", "1")
	out, err := cmd.CombinedOutput()
	if l := <-loaded; err == nil && l.errors > 0 {
		err = fmt.Errorf("the load beside the proofs: %d errors", l.errors)
	}
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out)
	}
	// The benchmark runs once with b.N = 1, then with proofsBeside.
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return cpu / (proofsBeside + 1), nil
}

// dpopRows are the figures of DPoP's cost (issue 17, item 6): E's
// throughput beside B's and C's (not goals); the CPU DPoP adds per API
// call at one request rate against one proof's beside the same load (the
// goal); the same in the closed loop and against the quiet
// `BenchmarkProof` (not goals).
func (r *report) dpopRows() []goalRow {
	const fig = "DPoP adds ≈ one signature per API call: CPU per request E − C at one request rate"
	const goal = "≤ 1.5 × one proof's CPU beside the same load"
	if !r.has("E") {
		return []goalRow{notMeasured(fig, goal, "no DPoP target")}
	}
	rps := func(c closedResult) float64 { return c.rps }
	eb, ec := r.ratiosTo("E", "B", rps), r.ratiosTo("E", "C", rps)
	rows := []goalRow{{"(not a goal) API request throughput, DPoP ÷ bare proxy (E/B); DPoP ÷ memory store (E/C)", "—",
		fmt.Sprintf("%.3f (rounds %s); %.3f (rounds %s)", median(eb), spread(eb, "%.2f"), median(ec), spread(ec, "%.2f")), "—"}}
	proof, quietOK := r.microMetric("BenchmarkProof", "ns/op")
	quiet := func(d float64) string {
		if !quietOK || proof <= 0 {
			return ""
		}
		return fmt.Sprintf("; quiet (`BenchmarkProof`): %.0f µs, %.2f ×", proof/1e3, d/proof)
	}
	loaded := float64(r.proofLoaded)
	switch eq := r.dpopEqual; {
	case !withMicro:
		rows = append(rows, notMeasured(fig, goal, "BFFGATE_LOAD_MICRO=0"))
	case len(eq.added) == 0 || loaded <= 0:
		rows = append(rows, notMeasured(fig, goal, r.proofLoadedErr))
	default:
		d := median(eq.added)
		rows = append(rows, goalRow{fig, goal, fmt.Sprintf("%.0f µs at %.0f req/s (rounds %s µs) = %.2f × one proof beside that load (%.0f µs%s)",
			d/1e3, eq.rate, spreadMicros(eq.added), d/loaded, loaded/1e3, quiet(d)), met(d <= 1.5*loaded)})
	}
	if added := r.dpopAdded(); len(added) > 0 {
		d := median(added)
		rows = append(rows, goalRow{"(not a goal) the same in the closed loop, where E serves about half C's requests", "—",
			fmt.Sprintf("%.0f µs (rounds %s µs; E %.0f µs vs C %.0f µs)%s", d/1e3, spreadMicros(added),
				float64(r.medianCPU("E"))/1e3, float64(r.medianCPU("C"))/1e3, quiet(d)), "—"})
	}
	if bearer, ok1 := r.microMetric("BenchmarkAPIRequestDPoP/bearer", "ns/op"); ok1 {
		if dp, ok2 := r.microMetric("BenchmarkAPIRequestDPoP/dpop", "ns/op"); ok2 {
			ba, _ := r.microMetric("BenchmarkAPIRequestDPoP/bearer", "allocs/op")
			da, _ := r.microMetric("BenchmarkAPIRequestDPoP/dpop", "allocs/op")
			pa, _ := r.microMetric("BenchmarkProof", "allocs/op")
			rows = append(rows, goalRow{"(not a goal) the same in process (`BenchmarkAPIRequestDPoP`, dpop − bearer, wall time per request on 2 CPUs)", "—",
				fmt.Sprintf("%.0f µs, %.0f allocations (one proof: %.0f µs, %.0f allocations)", (dp-bearer)/1e3, da-ba, proof/1e3, pa), "—"})
		}
	}
	return rows
}

// spreadMicros is "min–max" of durations in nanoseconds, in µs.
func spreadMicros(v []float64) string {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.0f–%.0f", time.Duration(lo).Seconds()*1e6, time.Duration(hi).Seconds()*1e6)
}
