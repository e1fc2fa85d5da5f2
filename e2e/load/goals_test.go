//go:build loadbench

package load

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// goalRow is one line of the goals table.
type goalRow struct{ figure, goal, measured, met string }

// notMeasured is a row whose figure could not be measured, and why.
func notMeasured(figure, goal, why string) goalRow {
	return goalRow{figure, goal, "not measured: " + why, "—"}
}

// goalRows is every goal of issues 7, 15 and 17 with its figure from this run.
func (r *report) goalRows() []goalRow {
	var rows []goalRow
	add := func(figure, goal, measured string, ok bool) {
		rows = append(rows, goalRow{figure, goal, measured, met(ok)})
	}
	if r.has("C") {
		v := r.ratios("C", func(c closedResult) float64 { return c.rps })
		add("API request throughput, memory store ÷ bare proxy (C/B)", "≥ 0.90",
			fmt.Sprintf("%.3f (rounds %s)", median(v), spread(v, "%.2f")), median(v) >= 0.90)
		if cr := r.cpuRatios("C"); len(cr) > 0 {
			add("proxy CPU per request, memory store ÷ bare proxy (C/B)", "≤ 1.15",
				fmt.Sprintf("%.2f (rounds %s; %.0f µs vs %.0f µs)", median(cr), spread(cr, "%.2f"), float64(r.medianCPU("C"))/1e3, float64(r.medianCPU("B"))/1e3), median(cr) <= 1.15)
		} else {
			rows = append(rows, notMeasured("proxy CPU per request, memory store ÷ bare proxy (C/B)", "≤ 1.15", "/proc/<pid>/stat unreadable"))
		}
		if or := r.openCPURatios("C"); len(or) > 0 {
			rows = append(rows, goalRow{fmt.Sprintf("(not a goal) the same at one request rate, the open loop's (%.0f req/s): in the closed loop C also answers fewer requests than B, and per-request costs grow as throughput falls", r.openRate), "—",
				fmt.Sprintf("%.2f (rounds %s)", median(or), spread(or, "%.2f")), "—"})
		}
	}
	if r.has("D") {
		v := r.ratios("D", func(c closedResult) float64 { return c.rps })
		add("API request throughput, Redis store ÷ bare proxy (D/B)", "≥ 0.75",
			fmt.Sprintf("%.3f (rounds %s)", median(v), spread(v, "%.2f")), median(v) >= 0.75)
	} else {
		rows = append(rows, notMeasured("API request throughput, Redis store ÷ bare proxy (D/B)", "≥ 0.75", r.redisReason))
	}
	if len(r.cross) > 0 {
		p50, p99 := percentiles(slices.Clone(r.cross))
		add(fmt.Sprintf("cross-replica revocation, back-channel 200 at A → refusal at B, Redis (%d runs)", len(r.cross)), "p99 ≤ 50 ms",
			fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(p99), ms(p50), ms(slices.Max(r.cross))), p99 <= 50*time.Millisecond)
	} else {
		rows = append(rows, notMeasured("cross-replica revocation, back-channel 200 at A → refusal at B, Redis", "p99 ≤ 50 ms", r.crossReason))
	}
	bare, ok1 := r.microMetric("BenchmarkAPIRequest/bare", "allocs/op")
	gw, ok2 := r.microMetric("BenchmarkAPIRequest/bffgate", "allocs/op")
	switch {
	case ok1 && ok2 && bare > 0:
		add("allocations per API request ÷ the bare proxy's (`BenchmarkAPIRequest`)", "≤ 1.15",
			fmt.Sprintf("%.2f (%.0f vs %.0f)", gw/bare, gw, bare), gw/bare <= 1.15)
	case !withMicro:
		rows = append(rows, notMeasured("allocations per API request ÷ the bare proxy's", "≤ 1.15", "BFFGATE_LOAD_MICRO=0"))
	default:
		rows = append(rows, notMeasured("allocations per API request ÷ the bare proxy's", "≤ 1.15", "BenchmarkAPIRequest failed: "+r.microErr("BenchmarkAPIRequest")))
	}
	rows = append(rows, r.dpopRows()...)
	rows = append(rows, r.streamRows()...)
	rows = append(rows, r.loginRow())

	// Issue 7's goals, still held.
	if len(r.open["C"]) > 0 {
		added, c99, b99 := r.addedP99("C")
		rows = append(rows, goalRow{fmt.Sprintf("added p99 latency at 50 %% of the bare proxy's capacity (%.0f req/s), memory store", r.openRate), "≤ 1 ms", fmt.Sprintf("%s (p99 %s vs %s)", ms(added), ms(c99), ms(b99)), r.latencyMet(added)})
	}
	if len(r.open["D"]) > 0 {
		added, d99, b99 := r.addedP99("D")
		rows = append(rows, goalRow{"the same, Redis store", "≤ 1 ms", fmt.Sprintf("%s (p99 %s vs %s)", ms(added), ms(d99), ms(b99)), r.latencyMet(added)})
	}
	if v, ok := r.microMetric("BenchmarkBackchannel", "logouts/s"); ok {
		add(fmt.Sprintf("valid back-channel logouts per second, RS256 (`BenchmarkBackchannel`, %d CPUs)", runtime.NumCPU()), "≥ 5,000", fmt.Sprintf("%.0f", v), v >= 5000)
	} else if err := r.microErr("BenchmarkBackchannel"); err != "" {
		rows = append(rows, notMeasured("valid back-channel logouts per second, RS256 (`BenchmarkBackchannel`)", "≥ 5,000", "the benchmark failed: "+err))
	}
	if v, ok := r.microMetric("BenchmarkRevokeBySub/total=1M", "ns/op"); ok {
		small, _ := r.microMetric("BenchmarkRevokeBySub/total=10k", "ns/op")
		add("revoke the 100 sessions of one sub among 1M (10k)", "≤ 1 ms, independent of the total", fmt.Sprintf("%s (%s)", ms(time.Duration(v)), ms(time.Duration(small))), v <= 1e6)
	}
	if v, ok := r.microMetric("BenchmarkMemoryHeapPerSession", "B/session"); ok {
		add("heap per idle session, memory store, tokens excluded (100k)", "≤ 1 KiB", fmt.Sprintf("%.0f B", v), v <= 1024)
	}
	return rows
}

// restCPUMax is what "CPU at rest ≈ 0" is judged against: 1 % of one CPU.
const restCPUMax = 0.01

// streamRows are the three figures of the open-streams goal.
func (r *report) streamRows() []goalRow {
	const (
		memFig  = "memory per open `/bff/events` stream (gateway VmRSS growth ÷ streams)"
		pushFig = "back-channel logout (request sent) → the last of its session's tabs has the logout event"
		restFig = "gateway CPU at rest with the streams open"
	)
	s := r.streams
	if s == nil || s.streams == 0 {
		why := r.streamsReason
		if s != nil {
			why = s.reason
		}
		return []goalRow{notMeasured(memFig, "≤ 10 KiB", why), notMeasured(pushFig, "p99 ≤ 50 ms", why), notMeasured(restFig, "≈ 0", why)}
	}
	n := fmt.Sprintf(" (%d streams)", s.streams)
	rows := []goalRow{{memFig + n, "≤ 10 KiB", fmt.Sprintf("%.1f KiB (VmRSS %.0f → %.0f MiB)", s.perStreamKiB(), float64(s.rssBefore)/1024, float64(s.rssAfter)/1024), met(s.perStreamKiB() <= 10)}}
	if len(s.push) == 0 {
		rows = append(rows, notMeasured(pushFig+n, "p99 ≤ 50 ms", s.reason))
	} else {
		p50, p99 := percentiles(slices.Clone(s.push))
		ok := p99 <= 50*time.Millisecond && s.othersEnded == 0 && s.reason == "" && (!s.memEnd.ok || int(s.memEnd.streams) == s.stillOpen)
		m := fmt.Sprintf("p99 %s (p50 %s, max %s) over %d logouts of %d tabs each; %d of %d tab events before the 200; other streams ended: %d, still open: %d", ms(p99), ms(p50), ms(slices.Max(s.push)), len(s.push), s.perSession, s.beforeAck, len(s.push)*s.perSession, s.othersEnded, s.stillOpen)
		if s.reason != "" {
			m += "; stopped: " + s.reason
		}
		rows = append(rows, goalRow{pushFig + n, "p99 ≤ 50 ms, the others stay open", m, met(ok)})
	}
	if s.restCPU < 0 {
		rows = append(rows, notMeasured(restFig+n, "≈ 0", "/proc/<pid>/stat unreadable"))
	} else {
		share := s.restCPU.Seconds() / s.restFor.Seconds()
		rows = append(rows, goalRow{restFig + n, fmt.Sprintf("≈ 0 (≤ %.0f %% of one CPU)", restCPUMax*100), fmt.Sprintf("%v over %v (%.2f %% of one CPU)", s.restCPU, s.restFor.Round(100*time.Millisecond), share*100), met(share <= restCPUMax)})
	}
	return rows
}

// loginTimes splits the logins into their round trip, the IdP's handler
// time and the rest (the gateway's own, loopback included).
func (r *report) loginTimes() (callback, idp, own []time.Duration) {
	for _, l := range r.logins {
		callback, idp, own = append(callback, l.callback), append(idp, l.idp), append(own, l.callback-l.idp)
	}
	return callback, idp, own
}

func (r *report) loginRow() goalRow {
	const fig = "login: the gateway's own time per `/bff/callback` (round trip − the test OP's handler time)"
	if len(r.logins) == 0 {
		return notMeasured(fig, "p99 ≤ 5 ms", "no logins")
	}
	cb, idp, own := r.loginTimes()
	o50, o99 := percentiles(own)
	i50, i99 := percentiles(idp)
	c50, c99 := percentiles(cb)
	return goalRow{fmt.Sprintf("%s (%d logins)", fig, len(r.logins)), "p99 ≤ 5 ms",
		fmt.Sprintf("p99 %s (p50 %s); IdP p99 %s (p50 %s); round trip p99 %s (p50 %s)", ms(o99), ms(o50), ms(i99), ms(i50), ms(c99), ms(c50)),
		met(o99 <= 5*time.Millisecond)}
}

// streamsSection details the streams run.
func (r *report) streamsSection(p func(string, ...any)) {
	s := r.streams
	if s == nil || s.streams == 0 {
		return
	}
	p("\n#### Open `/bff/events` streams (%d over TCP to the built binary, memory store; %d sessions × %d tabs)\n\n", s.streams, s.sessions, s.perSession)
	p("| figure | value |\n|---|---|\n")
	p("| gateway VmRSS, signed-in sessions, no stream → all streams open (settled) | %d KiB → %d KiB: %.1f KiB per stream |\n", s.rssBefore, s.rssAfter, s.perStreamKiB())
	if s.memBefore.ok && s.memAfter.ok {
		per := func(a, b float64) string { return fmt.Sprintf("%.1f KiB", (b-a)/1024/float64(s.streams)) }
		p("| per stream, from the gateway's `/metrics` (Go collector): heap in use, goroutine stacks, goroutines | %s, %s, %.2f |\n",
			per(s.memBefore.heapInuse, s.memAfter.heapInuse), per(s.memBefore.stackInuse, s.memAfter.stackInuse), (s.memAfter.goroutines-s.memBefore.goroutines)/float64(s.streams))
		p("| `bffgate_event_streams` with all open | %.0f |\n", s.memAfter.streams)
	}
	p("| RLIMIT_NOFILE soft: load test, gateway | %d, %d |\n", s.fdLimit, s.gatewayFDLimit)
	if s.restCPU >= 0 {
		p("| gateway CPU (utime+stime) at rest, all open | %v over %v |\n", s.restCPU, s.restFor.Round(100*time.Millisecond))
	}
	if len(s.push) > 0 {
		p50, p99 := percentiles(slices.Clone(s.push))
		a50, a99 := percentiles(slices.Clone(s.ack))
		p("| back-channel request sent → the last of the session's tabs has `event: logout` | p50 %s, p99 %s, max %s (%d logouts) |\n", ms(p50), ms(p99), ms(slices.Max(s.push)), len(s.push))
		p("| back-channel request sent → its 200 read (RS256 verify, revocation, fan-out) | p50 %s, p99 %s; %d of %d tab events arrived before the 200 was read |\n", ms(a50), ms(a99), s.beforeAck, len(s.push)*s.perSession)
	}
	p("| streams of other sessions that ended; still open at the end (the gateway's `bffgate_event_streams`) | %d; %d (%.0f) |\n", s.othersEnded, s.stillOpen, s.memEnd.streams)
}

// loginSection details the login split.
func (r *report) loginSection(p func(string, ...any)) {
	if len(r.logins) == 0 {
		return
	}
	cb, idp, own := r.loginTimes()
	calls := 0
	for _, l := range r.logins {
		calls += l.idpCalls
	}
	row := func(name string, d []time.Duration) {
		p50, p99 := percentiles(d)
		p("| %s | %s | %s |\n", name, ms(p50), ms(p99))
	}
	p("\n#### Logins (%d against C, one at a time; %.1f requests to the test OP per callback)\n\n| part of `/bff/callback` | p50 | p99 |\n|---|---|---|\n", len(r.logins), float64(calls)/float64(len(r.logins)))
	row("round trip, as the browser sees it", cb)
	row("the test OP's handlers (token endpoint with its RS256 signing; JWKS, discovery when hit)", idp)
	row("the gateway's own: round trip − the OP's", own)
}

// comparison is the oauth2-proxy line: O against B and C, or why it is
// not there.
func (r *report) comparison() string {
	if !r.has("O") {
		return "oauth2-proxy not measured: " + r.o2pReason
	}
	o := r.ratios("O", func(c closedResult) float64 { return c.rps })
	s := fmt.Sprintf("%s: throughput ÷ bare proxy %.3f (rounds %s)", r.o2pVersion, median(o), spread(o, "%.2f"))
	if oc := r.cpuRatios("O"); len(oc) > 0 {
		s += fmt.Sprintf(", CPU per request ÷ bare proxy %.2f (rounds %s)", median(oc), spread(oc, "%.2f"))
	}
	if c := r.median("O"); c > 0 {
		s += fmt.Sprintf("; bffgate memory store ÷ oauth2-proxy: %.2f× the throughput", r.median("C")/c)
		if cc, oc := r.medianCPU("C"), r.medianCPU("O"); cc > 0 && oc > 0 {
			s += fmt.Sprintf(", %.2f× the CPU per request", float64(cc)/float64(oc))
		}
	}
	return s
}

// goalsText is the goals table for stdout.
func (r *report) goalsText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "(not a goal) %s\n", r.comparison())
	for _, g := range r.goalRows() {
		m, measured := strings.Trim(g.met, "*"), g.measured
		if g.goal == "—" {
			m = "info"
		} else if v, ok := map[string]string{"yes": "met", "no": "NOT MET", "—": "unknown"}[m]; ok {
			m = v
		} else { // "unknown: why"
			m, measured = "unknown", measured+"; "+m
		}
		fmt.Fprintf(&b, "%-9s %s\n          goal %s; measured %s\n", m, g.figure, g.goal, measured)
	}
	return b.String()
}

// openCPURatios is, per open-loop round, key's CPU per request over B's
// in the same round (both at the open loop's rate).
func (r *report) openCPURatios(key string) []float64 {
	perRequest := func(o openResult) float64 {
		if o.cpu <= 0 || o.count == 0 {
			return -1
		}
		return float64(o.cpu) / float64(o.count)
	}
	var v []float64
	for i, o := range r.open[key] {
		if i < len(r.open["B"]) {
			a, b := perRequest(o), perRequest(r.open["B"][i])
			if a > 0 && b > 0 {
				v = append(v, a/b)
			}
		}
	}
	return v
}
