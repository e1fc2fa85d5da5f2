//go:build loadbench

package load

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// TestLoad is `make bench`: it starts the targets, signs in, measures
// them side by side in interleaved rounds, runs the Go benchmarks for the
// other figures, and writes the report (to docPath when set).
func TestLoad(t *testing.T) {
	skipUnlessEnabled(t)
	rep := &report{started: time.Now(), machine: describeMachine(), loadBefore: loadAvg()}

	clock := &opClock{}
	op := testop.New(t, testop.Config{Wrap: clock.wrap, DPoP: true}) // binds the tokens of E's exchanges only
	upAddr, bareAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	upstreamURL := "http://" + upAddr
	up := start(t, "upstream", nil, bins.upstream, "-listen", upAddr)
	must(t, up.waitListening(upAddr))
	bare := start(t, "bareproxy", nil, bins.bare, "-listen", bareAddr, "-upstream", upstreamURL)
	must(t, bare.waitListening(bareAddr))

	mem := newGateway("bffgate-memory", "memory", "")
	mem.reserve(t)
	dp := newGateway("bffgate-dpop", "memory", "")
	dp.dpop = true
	dp.reserve(t)
	gws := []*gateway{mem, dp}
	redisURL, reason := startRedis(t)
	var red, red2 *gateway
	if redisURL != "" {
		red, red2 = newGateway("bffgate-redis", "redis", redisURL), newGateway("bffgate-redis-2", "redis", redisURL)
		red.reserve(t)
		red2.reserve(t)
		gws = append(gws, red, red2)
	}
	var streamsGW *gateway
	if rep.streamsReason = streamsOff(); rep.streamsReason == "" {
		streamsGW = newGateway("bffgate-streams", "memory", "")
		streamsGW.serverExtra = fmt.Sprintf("max_connections = %d\nmax_event_streams = %d\nmax_event_streams_per_user = %d",
			streamCount+1000, streamCount+100, streamCount+100)
		streamsGW.reserve(t)
		gws = append(gws, streamsGW)
	}
	var callbacks []string
	for _, g := range gws {
		callbacks = append(callbacks, g.callbackPrefix)
	}
	o2pBin, o2pReason := findOAuth2Proxy()
	var o2p *oauth2Proxy
	if o2pBin != "" {
		o2p = newOAuth2Proxy(t, o2pBin)
		callbacks = append(callbacks, o2p.callbackPrefix)
	}
	op.AddClient(op.ClientID(), op.ClientSecret(), callbacks...)
	must(t, mem.start(t, op, upstreamURL))
	must(t, dp.start(t, op, upstreamURL))
	if red != nil {
		if err := red.start(t, op, upstreamURL); err != nil {
			red, red2, reason = nil, nil, "the gateway does not run with store = \"redis\": "+err.Error()
		} else if err := red2.start(t, op, upstreamURL); err != nil {
			red2 = nil
			rep.crossReason = "second replica: " + err.Error()
		}
	}
	rep.redisReason = reason

	_, err := mem.login()
	must(t, err)
	targets := []target{
		{key: "A", name: "upstream direct", url: upstreamURL + apiPath, headers: []string{"Cookie: " + mem.cookie, "X-CSRF: 1", "Authorization: Bearer direct"}, pid: up.Pid()},
		{key: "B", name: "bare httputil.ReverseProxy", url: "http://" + bareAddr + apiPath, headers: []string{"Cookie: " + mem.cookie, "X-CSRF: 1"}, pid: bare.Pid()},
		mem.target("C", "bffgate, memory store"),
	}
	if red != nil {
		if _, err := red.login(); err != nil {
			t.Logf("redis target left out: %v", err)
			rep.redisReason = "login through the Redis gateway failed: " + err.Error()
			red, red2 = nil, nil
		} else {
			targets = append(targets, red.target("D", "bffgate, Redis store"))
		}
	}
	tgE, err := dpopTarget(op, dp)
	must(t, err)
	targets = append(targets, tgE)
	if o2p != nil {
		rep.o2pVersion = o2p.version
		if err := o2p.start(t, op, upstreamURL); err != nil {
			o2pReason = "oauth2-proxy does not start: " + err.Error()
		} else if err := o2p.login(); err != nil {
			o2pReason = "login through oauth2-proxy failed: " + err.Error()
		} else {
			targets = append(targets, o2p.target())
		}
	}
	rep.o2pReason = o2pReason
	if o2pReason != "" {
		t.Logf("oauth2-proxy target left out: %s", o2pReason)
	}
	for _, tg := range targets {
		must(t, tg.check())
	}
	rep.targets = targets

	// Closed loop: warm-up, then interleaved rounds A B C D E O A B C D E O …
	for _, tg := range targets {
		if _, err := closedLoop(tg, warmupDur); err != nil {
			t.Fatal(err)
		}
	}
	rep.closed = map[string][]closedResult{}
	for r := range rounds {
		for _, tg := range targets {
			res, err := closedLoop(tg, roundDur)
			must(t, err)
			if res.errors > 0 {
				t.Errorf("round %d, %s: %d errors (non-2xx or socket)", r+1, tg.name, res.errors)
			}
			rep.closed[tg.key] = append(rep.closed[tg.key], res)
			t.Logf("closed loop, round %d, %s %-28s %9.0f req/s  p50 %v  p99 %v  CPU/request %v", r+1, tg.key, tg.name, res.rps, res.p50, res.p99, res.cpuPerRequest())
		}
	}

	// Open loop at half the bare proxy's capacity (its closed-loop median),
	// B and the gateways interleaved; not oauth2-proxy, whose capacity is
	// below that rate (it would only queue), nor E (DPoP's figure is its
	// CPU per request, from the closed loop).
	rep.openRate = rep.median("B") / 2
	if useWrk() {
		// The open loop's generator is Go, which needs several times
		// wrk's CPU per request on the same two cores: half of what B
		// serves to wrk is more than B can serve beside the Go generator
		// (every target then only queued, p99 ≈ 200 ms). Calibrate on B
		// with the Go closed loop instead.
		cal, err := goClosedLoop(targets[1], roundDur)
		must(t, err)
		rep.openRate = cal.rps / 2
		t.Logf("open loop: B serves %.0f req/s beside the Go generator; rate %.0f/s", cal.rps, rep.openRate)
	}
	rep.open = map[string][]openResult{}
	clients := map[string]*http.Client{}
	openTargets := slices.DeleteFunc(slices.Clone(targets[1:]), func(tg target) bool { return tg.key == "O" || tg.key == "E" })
	for _, tg := range openTargets {
		clients[tg.key] = newClient(openWorkers)
		defer clients[tg.key].CloseIdleConnections()
		openLoop(clients[tg.key], tg, rep.openRate, warmupDur) // connections and warm-up
	}
	for r := range rounds {
		for _, tg := range openTargets {
			m := startCPU(tg.pid)
			res := openLoop(clients[tg.key], tg, rep.openRate, roundDur)
			res.cpu = m.used()
			if res.errors > 0 {
				t.Errorf("open loop round %d, %s: %d errors", r+1, tg.name, res.errors)
			}
			rep.open[tg.key] = append(rep.open[tg.key], res)
			t.Logf("open loop, round %d, %s at %.0f/s: achieved %.0f/s  p50 %v  p99 %v", r+1, tg.key, res.rate, res.achieved, res.p50, res.p99)
		}
	}

	// Logins, one at a time: /bff/callback as the browser sees it, and
	// the test OP's handler time within it (token endpoint, with its RS256
	// signing of the ID token; JWKS or discovery when hit).
	for range logins {
		_, lt, err := mem.loginSession(clock)
		must(t, err)
		rep.logins = append(rep.logins, lt)
	}

	// Cross-replica revocation: back-channel 200 at one replica, then how
	// long until the other refuses the session's cookie.
	if red != nil && red2 != nil {
		rep.cross, rep.crossReason = crossReplica(t, op, red, red2)
	} else if rep.crossReason == "" {
		rep.crossReason = "needs the Redis target (" + rep.redisReason + ")"
	}
	rep.loadAfterLoad = loadAvg()

	// Open event streams on a gateway of their own.
	if streamsGW != nil {
		if err := streamsGW.start(t, op, upstreamURL); err != nil {
			rep.streamsReason = "the streams gateway does not start: " + err.Error()
		} else {
			res := measureStreams(op, streamsGW)
			rep.streams = &res
			if res.reason != "" {
				t.Errorf("event streams: %s", res.reason)
			}
			t.Logf("event streams: %d open (%d sessions × %d): VmRSS %d → %d KiB (%.1f KiB/stream); CPU at rest %v over %v; push p99 %v over %d logouts; other streams ended: %d",
				res.streams, res.sessions, res.perSession, res.rssBefore, res.rssAfter, res.perStreamKiB(), res.restCPU, res.restFor.Round(time.Millisecond), p99Of(res.push), len(res.push), res.othersEnded)
		}
	}

	if withMicro && rep.has("E") {
		// DPoP's cost at one request rate, and one proof's CPU beside
		// that load (the goal's unit).
		key := func(k string) target {
			return targets[slices.IndexFunc(targets, func(tg target) bool { return tg.key == k })]
		}
		// Half E's capacity beside the Go generator (the open loop's rate
		// is half B's), which both serve without queueing.
		rate := rep.openRate * median(rep.ratiosTo("E", "B", func(c closedResult) float64 { return c.rps }))
		eq, err := measureDPoPEqualRate(key("C"), key("E"), rate)
		if err != nil {
			t.Errorf("DPoP at one rate: %v", err)
		}
		rep.dpopEqual = eq
		if d, err := proofBeside(key("C"), rate); err != nil {
			rep.proofLoadedErr = err.Error()
			t.Errorf("one proof beside the load: %v", err)
		} else {
			rep.proofLoaded = d
			t.Logf("DPoP at %.0f req/s: E − C per round %v ns; one proof beside the load on C: %v of CPU", rate, eq.added, d)
		}
	}
	if withMicro {
		rep.microLoad = loadAvg()
		for _, m := range microBenches {
			lines, err := m.run()
			if err != nil {
				t.Errorf("go benchmark: %v", err)
			}
			rep.micro = append(rep.micro, microRun{bench: m, lines: lines, err: err})
			for _, l := range lines {
				t.Logf("%s %v", l.name, l.metrics)
			}
		}
	}
	rep.finished = time.Now()
	out := rep.markdown()
	t.Logf("\n%s", out)
	fmt.Printf("\n=== make bench: goals ===\n%s\n", rep.goalsText())
	if docPath != "" {
		must(t, writeSection(docPath, out))
		t.Logf("wrote the generated section of %s", docPath)
	}
}

// streamsOff is why the streams figure is not measured, or "".
func streamsOff() string {
	if os.Getenv("BFFGATE_LOAD_STREAMS") == "0" {
		return "BFFGATE_LOAD_STREAMS=0"
	}
	return ""
}

func p99Of(d []time.Duration) time.Duration {
	_, p99 := percentiles(slices.Clone(d))
	return p99
}

var logins = envInt("BFFGATE_LOAD_LOGINS", 200)

// crossReplica measures, per iteration, a fresh login at a, a
// back-channel logout for its sid at a, and the time from a's 200 to b's
// first 401 for the same cookie.
func crossReplica(t *testing.T, op *testop.OP, a, b *gateway) ([]time.Duration, string) {
	n := envInt("BFFGATE_LOAD_CROSS", 100)
	c := newClient(4)
	defer c.CloseIdleConnections()
	var out []time.Duration
	for i := range n {
		if _, err := a.login(); err != nil {
			return out, err.Error()
		}
		tg := target{name: "replica B", url: b.public + apiPath, headers: []string{"Cookie: " + a.cookie, "X-CSRF: 1"}}
		if !do(c, tg) {
			return out, fmt.Sprintf("iteration %d: replica B does not accept a session made at A", i)
		}
		tok := op.Sign(op.LogoutToken(func(m map[string]any) { m["sid"] = op.LastSID() }), testop.SignOpts{})
		resp, err := c.PostForm(a.public+"/bff/backchannel-logout", url.Values{"logout_token": {tok}})
		if err != nil {
			return out, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return out, fmt.Sprintf("back-channel at A: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		t0 := time.Now()
		for do(c, tg) {
			if time.Since(t0) > 5*time.Second {
				return out, "replica B still accepts the session 5 s after the logout at A"
			}
		}
		out = append(out, time.Since(t0))
	}
	return out, ""
}
