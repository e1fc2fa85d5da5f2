//go:build loadbench

package load

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
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

	op := testop.New(t, testop.Config{})
	upAddr, bareAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	upstreamURL := "http://" + upAddr
	up := start(t, "upstream", nil, bins.upstream, "-listen", upAddr)
	must(t, up.waitListening(upAddr))
	bare := start(t, "bareproxy", nil, bins.bare, "-listen", bareAddr, "-upstream", upstreamURL)
	must(t, bare.waitListening(bareAddr))

	mem := newGateway("bffgate-memory", "memory", "")
	mem.reserve(t)
	gws := []*gateway{mem}
	redisURL, reason := startRedis(t)
	var red, red2 *gateway
	if redisURL != "" {
		red, red2 = newGateway("bffgate-redis", "redis", redisURL), newGateway("bffgate-redis-2", "redis", redisURL)
		red.reserve(t)
		red2.reserve(t)
		gws = append(gws, red, red2)
	}
	var callbacks []string
	for _, g := range gws {
		callbacks = append(callbacks, g.callbackPrefix)
	}
	op.AddClient(op.ClientID(), op.ClientSecret(), callbacks...)
	must(t, mem.start(t, op, upstreamURL))
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
		{key: "A", name: "upstream direct", url: upstreamURL + apiPath, headers: []string{"Cookie: " + mem.cookie, "X-CSRF: 1", "Authorization: Bearer direct"}},
		{key: "B", name: "bare httputil.ReverseProxy", url: "http://" + bareAddr + apiPath, headers: []string{"Cookie: " + mem.cookie, "X-CSRF: 1"}},
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
	for _, tg := range targets {
		must(t, tg.check())
	}
	rep.targets = targets

	// Closed loop: warm-up, then interleaved rounds A B C D A B C D …
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
			t.Logf("closed loop, round %d, %s %-28s %9.0f req/s  p50 %v  p99 %v", r+1, tg.key, tg.name, res.rps, res.p50, res.p99)
		}
	}

	// Open loop at half the bare proxy's capacity (its closed-loop median),
	// B and the gateways interleaved.
	rep.openRate = rep.median("B") / 2
	rep.open = map[string][]openResult{}
	clients := map[string]*http.Client{}
	for _, tg := range targets[1:] {
		clients[tg.key] = newClient(openWorkers)
		defer clients[tg.key].CloseIdleConnections()
		openLoop(clients[tg.key], tg, rep.openRate, warmupDur) // connections and warm-up
	}
	for r := range rounds {
		for _, tg := range targets[1:] {
			res := openLoop(clients[tg.key], tg, rep.openRate, roundDur)
			if res.errors > 0 {
				t.Errorf("open loop round %d, %s: %d errors", r+1, tg.name, res.errors)
			}
			rep.open[tg.key] = append(rep.open[tg.key], res)
			t.Logf("open loop, round %d, %s at %.0f/s: achieved %.0f/s  p50 %v  p99 %v", r+1, tg.key, res.rate, res.achieved, res.p50, res.p99)
		}
	}

	// Login round trip: /bff/callback as the browser sees it. For scale,
	// the test OP's own share: signing one RS256 ID token.
	for range logins {
		d, err := mem.login()
		must(t, err)
		rep.logins = append(rep.logins, d)
	}
	for range 50 {
		t0 := time.Now()
		op.Sign(op.LogoutToken(nil), testop.SignOpts{})
		rep.opSign = append(rep.opSign, time.Since(t0))
	}

	// Cross-replica revocation: back-channel 200 at one replica, then how
	// long until the other refuses the session's cookie.
	if red != nil && red2 != nil {
		rep.cross, rep.crossReason = crossReplica(t, op, red, red2)
	} else if rep.crossReason == "" {
		rep.crossReason = "needs the Redis target (" + rep.redisReason + ")"
	}

	rep.loadAfterLoad = loadAvg()
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
	if docPath != "" {
		must(t, writeSection(docPath, out))
		t.Logf("wrote the generated section of %s", docPath)
	}
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
