//go:build loadbench

package load

import (
	"errors"
	"fmt"
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

// proofsBeside is how many proofs proofBeside signs: about a second of
// CPU, well inside its load.
const proofsBeside = 20000

// proofBeside is one DPoP proof's CPU measured as E's rounds see it: with
// the machine under the same kind of load. BenchmarkProof (one goroutine,
// proofsBeside proofs) runs as a process of its own while C serves a
// closed loop, and its CPU (user + system, from the kernel's accounting
// of the process) is divided by the proofs. A quiet BenchmarkProof reads
// 10–30 % lower: caches and cores are shared with the load, as they are
// for the gateway's proofs.
func proofBeside(c target) (time.Duration, error) {
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
	loaded := make(chan error, 1)
	go func() {
		_, err := closedLoop(c, 5*time.Second)
		loaded <- err
	}()
	<-time.After(time.Second) // the load is running
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", "^BenchmarkProof$",
		"-test.benchtime", fmt.Sprintf("%dx", proofsBeside), "-test.cpu", "1")
	out, err := cmd.CombinedOutput()
	if lerr := <-loaded; err == nil && lerr != nil {
		err = fmt.Errorf("the load beside the proofs: %w", lerr)
	}
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out)
	}
	// The benchmark runs once with b.N = 1, then with proofsBeside.
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return cpu / (proofsBeside + 1), nil
}

// dpopRows are the figures of DPoP's cost (issue 17, item 6): E's
// throughput beside B's and C's (not goals), and the CPU DPoP adds per
// API call against one proof's, measured beside the same kind of load
// (proofBeside); the quiet `BenchmarkProof` beside it.
func (r *report) dpopRows() []goalRow {
	const fig = "DPoP adds ≈ one signature per API call: CPU per request E − C"
	const goal = "≤ 1.5 × one proof's CPU beside the same load"
	if !r.has("E") {
		return []goalRow{notMeasured(fig, goal, "no DPoP target")}
	}
	rps := func(c closedResult) float64 { return c.rps }
	eb, ec := r.ratiosTo("E", "B", rps), r.ratiosTo("E", "C", rps)
	rows := []goalRow{{"(not a goal) API request throughput, DPoP ÷ bare proxy (E/B); DPoP ÷ memory store (E/C)", "—",
		fmt.Sprintf("%.3f (rounds %s); %.3f (rounds %s)", median(eb), spread(eb, "%.2f"), median(ec), spread(ec, "%.2f")), "—"}}
	added := r.dpopAdded()
	if len(added) == 0 {
		return append(rows, notMeasured(fig, goal, "/proc/<pid>/stat unreadable"))
	}
	d := median(added)
	cpu := fmt.Sprintf("%.0f µs (rounds %s µs; E %.0f µs vs C %.0f µs)", d/1e3, spreadMicros(added), float64(r.medianCPU("E"))/1e3, float64(r.medianCPU("C"))/1e3)
	proof, ok := r.microMetric("BenchmarkProof", "ns/op")
	quiet := ""
	if ok && proof > 0 {
		quiet = fmt.Sprintf("; quiet (`BenchmarkProof`): %.0f µs, %.2f ×", proof/1e3, d/proof)
	}
	switch loaded := float64(r.proofLoaded); {
	case loaded > 0:
		rows = append(rows, goalRow{fig, goal, fmt.Sprintf("%s = %.2f × one proof beside the load (%.0f µs%s)", cpu, d/loaded, loaded/1e3, quiet), met(d <= 1.5*loaded)})
	case !withMicro:
		rows = append(rows, goalRow{fig, goal, cpu + "; one proof not measured: BFFGATE_LOAD_MICRO=0", "—"})
	default:
		rows = append(rows, goalRow{fig, goal, cpu + "; one proof beside the load not measured: " + r.proofLoadedErr + quiet, "—"})
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
