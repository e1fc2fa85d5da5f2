package hostile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bffgate/bffgate/internal/testop"
)

// The traffic, bounded in count and time.
const (
	// Front-channel requests with made-up sids: at least fcFloodMin, and
	// on until the genuine user is done, but never more than fcFloodMax.
	fcFloodMin, fcFloodMax = 3000, 10000
	floodWorkers           = 16
	// Logins started by one browser (the cookie bomb): 19 used to push
	// its Cookie header past 64 KiB.
	cookieBombLogins = 120
	// Junk-kid logout tokens in flight at once, until the genuine user is
	// done: more than jwks_max_waiters (64), so that some wait for the next
	// allowed JWKS fetch and the others are refused at once.
	junkWorkers, junkMax = 96, 5000
	// The whole attack phase.
	attackTimeout = 40 * time.Second
)

// The bounds on the gateway. Before issue 12, the front-channel flood
// alone kept a tombstone per request: with 255-byte sids that was one
// Redis key (~600 bytes) per request, and the cookie bomb grew one
// browser's cookies by ~3.9 KB per login.
const (
	// maxLiveHeapGrowth: live heap after a GC, after the attack minus
	// before it, besides the buffers of new Redis connections
	// (redisConnHeap each). What remains is one new genuine session and
	// warmed pools, the same for 3,000 or 12,000 front-channel requests
	// (measured: under 2.5 MiB); nothing per hostile request. Before issue
	// 12 the memory store kept ~400 bytes per front-channel request.
	maxLiveHeapGrowth = 4 << 20
	// redisConnHeap: go-redis v9's read and write buffers, 32 KiB each.
	redisConnHeap = 64 << 10
	// maxPeakRSSGrowth: peak resident memory during the attack minus before.
	// Transient: a few dozen concurrent connections' buffers, the 4 KiB
	// bodies read, garbage between GCs (the Go runtime returns it lazily).
	maxPeakRSSGrowth = 96 << 20
	// maxGoroutineGrowth, maxFDGrowth: once the attack's connections are
	// closed, the gateway is back where it started, give or take an idle
	// upstream connection or two (each a descriptor and two goroutines).
	// Connections to Redis are not counted in maxFDGrowth: go-redis keeps
	// a pool that grows with concurrency, bounded by maxRedisConnsPerCPU.
	maxGoroutineGrowth = 12
	maxFDGrowth        = 6
	// maxRedisConns: the idle connections go-redis v9 keeps: its main pool
	// (PoolSize, 10 per GOMAXPROCS; the gateway's is the machine's CPU
	// count), its pipeline pool (10) and Pub/Sub (a few): this per CPU,
	// plus maxRedisConnsExtra. Never one per hostile request.
	maxRedisConnsPerCPU, maxRedisConnsExtra = 10, 14
	// maxRedisKeyGrowth: alice's new session (the session hash and its
	// indexes), bob's ended one (a sid and a sub tombstone) and the genuine
	// logout token's replay key. Not one key per hostile request.
	maxRedisKeyGrowth = 16
	// maxRedisMemGrowth: Redis used_memory_dataset (the keys' memory;
	// client buffers, which grow with the gateway's connection pool, are
	// not in it) after minus before. Before issue 12 the front-channel
	// flood alone added 2,997 keys.
	maxRedisMemGrowth = 1 << 20
	// maxCookieBytes: the gateway's cookies that a browser sends with any
	// one request, and all of them together, after the cookie bomb.
	maxCookieBytes = 8 << 10
)

// cookiePaths are where the cookie bomb's total is measured: every path
// a login-state or session cookie may be scoped to, and any other.
var cookiePaths = []string{"/", "/bff/callback", "/bff/login", "/bff/signed-out", "/bff/user", "/api/hello", "/x"}

// TestHostileTraffic replays the attacks of issue 12 against the gateway
// binary, all at once, while a genuine user signs in and calls the API
// and a genuine back-channel logout ends another user's session; then
// checks what the attack cost the gateway against the bounds above.
func TestHostileTraffic(t *testing.T) {
	s := startStack(t, "")
	began := time.Now()
	ctx := context.Background()

	// mallory is signed in: the path tricks and the spoofed headers carry
	// her session (her own access token must not reach /admin either).
	s.op.SetUser("mallory", nil)
	mallory := s.newBrowser()
	if err := mallory.login("/"); err != nil {
		t.Fatal(err)
	}
	_, mu, err := mallory.user()
	if err != nil || mu == nil {
		t.Fatalf("mallory's /bff/user: %v", err)
	}
	malloryCookie := mallory.cookieHeader("/api/hello")
	malloryLogout, _ := mu["logout_url"].(string)
	// bob is ended by the genuine back-channel logout during the attack.
	s.op.SetUser("bob", nil)
	bob := s.newBrowser()
	if err := bob.login("/"); err != nil {
		t.Fatal(err)
	}
	bobSID := s.op.LastSID()
	s.op.SetUser("alice", nil)

	// Tokens are signed here: testop fails the test on error, which only
	// the test's goroutine may do.
	genuineLogout := s.op.Sign(s.op.LogoutToken(func(c map[string]any) { c["sub"], c["sid"] = "bob", bobSID }), testop.SignOpts{})
	junk := make([]string, 64)
	for i := range junk {
		junk[i] = s.op.Sign(s.op.LogoutToken(nil), testop.SignOpts{KID: fmt.Sprintf("junk-%d", i)})
	}

	// Warm-up: one request of every kind, so that what is built on first
	// use (templates, pools, the JWKS) is in the baseline.
	warm := floodClient(1)
	if err := s.frontchannelRequest(ctx, warm, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.pathTrick(pathTricks[0], ""); err != nil {
		t.Fatal(err)
	}
	warm.CloseIdleConnections()
	base := s.measure(t, true)
	jwksBefore := s.op.JWKSFetches()
	t.Logf("before: %v", base)

	sm := s.sample(100 * time.Millisecond)
	attackCtx, cancel := context.WithTimeout(ctx, attackTimeout)
	defer cancel()
	g, gctx := errgroup.WithContext(attackCtx)
	var genuineDone atomic.Bool
	untilGenuine := func(min int) func(int) bool {
		return func(sent int) bool { return sent < min || !genuineDone.Load() }
	}
	attackStart := time.Now()
	var fcSent, junkSent int
	fc := floodClient(floodWorkers)
	g.Go(func() (err error) {
		fcSent, err = flood(gctx, floodWorkers, fcFloodMax, untilGenuine(fcFloodMin), func(ctx context.Context, i int) error {
			return s.frontchannelRequest(ctx, fc, i)
		})
		return err
	})
	jc := floodClient(junkWorkers)
	g.Go(func() (err error) {
		junkSent, err = flood(gctx, junkWorkers, junkMax, untilGenuine(junkWorkers), func(ctx context.Context, i int) error {
			return s.junkKidRequest(ctx, jc, junk[i%len(junk)])
		})
		return err
	})
	g.Go(func() error {
		for _, p := range pathTricks {
			if err := errors.Join(s.pathTrick(p, ""), s.pathTrick(p, malloryCookie)); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		// Bodies over the caps of the gateway's own endpoints: refused
		// before they are read, never spooled to disk.
		multipart := "multipart/form-data; boundary=XBOUNDARY"
		form := "application/x-www-form-urlencoded"
		return errors.Join(
			s.bigBody("/bff/logout", multipart, "", http.StatusUnsupportedMediaType),
			s.bigBody(malloryLogout, multipart, malloryCookie, http.StatusUnsupportedMediaType),
			s.bigBody(malloryLogout, form, malloryCookie, http.StatusRequestEntityTooLarge),
			s.bigBody("/bff/backchannel-logout", multipart, "", http.StatusBadRequest),
			s.bigBody("/bff/backchannel-logout", form, "", http.StatusRequestEntityTooLarge),
		)
	})
	g.Go(func() error {
		// A returnUrl past its cap is a 400, never a 5xx.
		b := s.newBrowser()
		for _, n := range []int{513, 2047, 2048, 4096, 16384, 40000} {
			ret := "/" + strings.Repeat("a", n-1)
			code, _, _, err := b.get("/bff/login?returnUrl=" + url.QueryEscape(ret))
			if err != nil {
				return fmt.Errorf("returnUrl of %d bytes: %w", n, err)
			}
			if code != http.StatusBadRequest {
				return errStatus(fmt.Sprintf("/bff/login with a returnUrl of %d bytes", n), code, http.StatusBadRequest)
			}
		}
		return nil
	})
	g.Go(func() error {
		return errors.Join(s.spoof("/api/hello", malloryCookie, 1), s.spoof("/spoof", "", 2))
	})
	var cookieBytes, cookieHeaderMax int
	g.Go(func() error {
		defer genuineDone.Store(true)
		var err error
		cookieBytes, cookieHeaderMax, err = s.genuine(gctx, bob, genuineLogout)
		return err
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	attackTook := time.Since(attackStart)
	peak := sm.end()
	for _, c := range []*http.Client{fc, jc, mallory.c, bob.c} {
		c.CloseIdleConnections()
	}

	// Back to the baseline once the attack's connections are closed.
	var after usage
	if err := eventually(10*time.Second, func() error {
		after = s.measure(t, false)
		return after.backTo(base)
	}); err != nil {
		t.Errorf("after the attack: %v", err)
	}
	after = s.measure(t, true)
	t.Logf("attack: %v; %d front-channel requests, %d junk-kid tokens, %d path tricks ×2, cookie bomb of %d logins",
		attackTook.Round(time.Millisecond), fcSent, junkSent, len(pathTricks), cookieBombLogins)
	t.Logf("peak:  rss %.1f MiB (+%.1f, bound +%.0f), fds %d, goroutines %d",
		mib(peak.rss), mib(peak.rss-base.rss), mib(maxPeakRSSGrowth), peak.fds, peak.goroutines)
	t.Logf("after: %v", after)
	t.Logf("cookies after the bomb: %d bytes in all, at most %d in one request (bound %d)", cookieBytes, cookieHeaderMax, maxCookieBytes)

	if fcSent < fcFloodMin {
		t.Errorf("front-channel flood sent %d requests, want at least %d", fcSent, fcFloodMin)
	}
	if bound := maxRedisConnsPerCPU*runtime.NumCPU() + maxRedisConnsExtra; after.redisConns > bound {
		t.Errorf("%d connections to Redis, bound %d", after.redisConns, bound)
	}
	newConns := int64(max(0, after.redisConns-base.redisConns))
	if d, bound := after.liveHeap-base.liveHeap, maxLiveHeapGrowth+newConns*redisConnHeap; d > bound {
		t.Errorf("live heap grew by %.2f MiB, bound %.2f MiB (%d new Redis connections)", mib(d), mib(bound), newConns)
	}
	if d := peak.rss - base.rss; d > maxPeakRSSGrowth {
		t.Errorf("peak RSS grew by %.1f MiB, bound %.0f MiB", mib(d), mib(maxPeakRSSGrowth))
	}
	if d := after.redisKeys - base.redisKeys; d > maxRedisKeyGrowth {
		keys, _ := s.rdb.Keys(ctx, "*").Result()
		t.Errorf("Redis keys grew by %d, bound %d; keys now: %d", d, maxRedisKeyGrowth, len(keys))
	}
	if d := after.redisMem - base.redisMem; d > maxRedisMemGrowth {
		t.Errorf("Redis used_memory_dataset grew by %.2f MiB, bound %.0f MiB", mib(d), mib(maxRedisMemGrowth))
	}
	if cookieBytes > maxCookieBytes || cookieHeaderMax > maxCookieBytes {
		t.Errorf("the gateway's cookies in the bombed browser: %d bytes, %d in one request; bound %d", cookieBytes, cookieHeaderMax, maxCookieBytes)
	}
	// Junk kids cost at most one JWKS fetch per jwks_refetch_interval
	// (5 s by default), however many arrive.
	if got, bound := s.op.JWKSFetches()-jwksBefore, 1+int(attackTook/(5*time.Second)); got > bound {
		t.Errorf("%d JWKS fetches during %v of junk-kid tokens, bound %d", got, attackTook.Round(time.Millisecond), bound)
	}
	s.checkUpstreams(t)
	if files, err := tempFiles(s.tmpDir); err != nil || len(files) != 0 {
		t.Errorf("the gateway's TMPDIR holds %v (%v), want nothing", files, err)
	}
	if lines := s.errorLogs(); len(lines) > 0 {
		t.Errorf("the gateway logged errors:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// genuine is the user who must not notice the attack. alice's browser is
// first bombed with logins (a cross-site page can start them), then she
// signs in, reads /bff/user and calls the API; and the IdP's back-channel
// logout of bob's session succeeds while junk-kid tokens arrive. It
// returns the size of the gateway's cookies in alice's browser: in all,
// and the most it sends with one request.
func (s *stack) genuine(ctx context.Context, bob *browser, logoutToken string) (total, perRequest int, err error) {
	alice := s.newBrowser()
	defer alice.c.CloseIdleConnections()
	ret := "/" + strings.Repeat("r", 500) // near the 512-byte cap: the largest login state
	for i := range cookieBombLogins {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		code, _, body, err := alice.get("/bff/login?returnUrl=" + url.QueryEscape(ret))
		if err != nil {
			return 0, 0, fmt.Errorf("cookie bomb login #%d: %w", i, err)
		}
		if code != http.StatusFound {
			return 0, 0, fmt.Errorf("cookie bomb login #%d: %d %s", i, code, body)
		}
	}
	if err := alice.login("/after-login"); err != nil {
		return 0, 0, fmt.Errorf("alice: %w", err)
	}
	if code, u, err := alice.user(); err != nil || code != http.StatusOK || u["sub"] != "alice" {
		return 0, 0, fmt.Errorf("alice's /bff/user: %d %v %v", code, u, err)
	}
	if code, _, body, err := alice.get("/api/hello"); err != nil || code != http.StatusOK {
		return 0, 0, fmt.Errorf("alice's API call: %d %s %v", code, body, err)
	}
	names := map[string]int{}
	for _, p := range cookiePaths {
		h := alice.cookieHeader(p)
		perRequest = max(perRequest, len(h))
		for _, c := range strings.Split(h, "; ") {
			name, _, _ := strings.Cut(c, "=")
			names[name] = len(c)
		}
	}
	for _, n := range names {
		total += n
	}

	// The IdP's back-channel logout of bob.
	form := url.Values{"logout_token": {logoutToken}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.public+"/bff/backchannel-logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, err := do(http.DefaultClient, req)
	if err != nil || code != http.StatusOK {
		return 0, 0, fmt.Errorf("genuine back-channel logout: %d %v", code, err)
	}
	if code, _, err := bob.user(); err != nil || code != http.StatusUnauthorized {
		return 0, 0, fmt.Errorf("bob's /bff/user after his back-channel logout: %d %v, want 401", code, err)
	}
	return total, perRequest, nil
}

// checkUpstreams: no path trick reached an upstream, and the spoofed
// forwarded headers did not either.
func (s *stack) checkUpstreams(t *testing.T) {
	t.Helper()
	for _, r := range s.api.requests() {
		if r.uri != "/api/hello" {
			t.Errorf("the API upstream received %q", r.uri)
		}
		if r.header.Get("Authorization") == "" {
			t.Errorf("the API upstream received %q without the user's token", r.uri)
		}
	}
	for _, r := range s.frontend.requests() {
		if r.uri != "/spoof" {
			t.Errorf("the frontend upstream received %q", r.uri)
		}
	}
	if err := s.checkSpoofed(s.api, 1); err != nil {
		t.Error(err)
	}
	if err := s.checkSpoofed(s.frontend, 1); err != nil {
		t.Error(err)
	}
}

// errorLogs are the gateway's log lines at level ERROR.
func (s *stack) errorLogs() []string {
	var out []string
	for _, line := range strings.Split(s.gw.log.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out
}
