//go:build loadbench

package load

import (
	"errors"
	"fmt"
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

// dpopRows are the figures of DPoP's cost (issue 17, item 6): E's
// throughput beside B's and C's (not goals), and the CPU DPoP adds per
// API call against one proof's (`BenchmarkProof`).
func (r *report) dpopRows() []goalRow {
	const fig = "DPoP adds ≈ one signature per API call: CPU per request E − C"
	const goal = "≤ 1.5 × one proof's CPU (`BenchmarkProof`)"
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
	switch {
	case ok && proof > 0:
		rows = append(rows, goalRow{fig, goal, fmt.Sprintf("%s = %.2f × one proof (%.0f µs)", cpu, d/proof, proof/1e3), met(d <= 1.5*proof)})
	case !withMicro:
		rows = append(rows, goalRow{fig, goal, cpu + "; one proof not measured: BFFGATE_LOAD_MICRO=0", "—"})
	default:
		rows = append(rows, goalRow{fig, goal, cpu + "; BenchmarkProof failed: " + r.microErr("BenchmarkProof"), "—"})
	}
	if bearer, ok1 := r.microMetric("BenchmarkAPIRequestDPoP/bearer", "ns/op"); ok1 {
		if dp, ok2 := r.microMetric("BenchmarkAPIRequestDPoP/dpop", "ns/op"); ok2 {
			ba, _ := r.microMetric("BenchmarkAPIRequestDPoP/bearer", "allocs/op")
			da, _ := r.microMetric("BenchmarkAPIRequestDPoP/dpop", "allocs/op")
			pa, _ := r.microMetric("BenchmarkProof", "allocs/op")
			rows = append(rows, goalRow{"(not a goal) the same in process (`BenchmarkAPIRequestDPoP`, dpop − bearer)", "—",
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
