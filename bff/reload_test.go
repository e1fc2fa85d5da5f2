package bff

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// config is the harness gateway's running configuration, to change and
// reload.
func (h *harness) config() Config {
	cur := h.gw.cur.Load()
	cfg := Config{Server: cur.server}
	for _, a := range cur.apps {
		c := a.cfg // a copy that shares nothing with the running app's
		c.APIs, c.Hosts, c.Downstream = slices.Clone(c.APIs), slices.Clone(c.Hosts), slices.Clone(c.Downstream)
		cfg.Apps = append(cfg.Apps, c)
	}
	return cfg
}

// reload applies cfg and fails the test on an error.
func (h *harness) reload(cfg Config) AppChanges {
	h.t.Helper()
	ch, err := h.gw.Reload(context.Background(), cfg)
	if err != nil {
		h.t.Fatalf("reload: %v", err)
	}
	return ch
}

// apiGet calls path with the browser's session and the CSRF header.
func (h *harness) apiGet(c *http.Client, path string) (int, string) {
	h.t.Helper()
	resp := h.get(c, path, "X-CSRF", "1")
	return resp.StatusCode, body(h.t, resp)
}

// named answers every request with its name, after release is closed
// when it is not nil; got receives each request's path.
func named(t *testing.T, name string, release <-chan struct{}, got chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got != nil {
			got <- r.URL.Path
		}
		if release != nil {
			<-release
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestReloadInFlightKeepsSnapshot: a request in flight during a reload
// finishes on the configuration it started with (the old upstream),
// the next one goes to the new upstream, and the session survives; the
// app's discovery is kept (same OIDC settings).
func TestReloadInFlightKeepsSnapshot(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan string, 1)
	old := named(t, "old", release, arrived)
	var once sync.Once
	done := func() { once.Do(func() { close(release) }) }
	t.Cleanup(done) // before the upstream's Close, which waits for it
	next := named(t, "new", nil, nil)
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) {
		a.APIs = append(a.APIs, APIConfig{Path: "/slow/", Upstream: old.URL})
	}})
	c := h.login("/")
	before := h.gw.cur.Load().apps[0]

	inflight := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/slow/x", nil)
		req.Header.Set("X-CSRF", "1")
		resp, err := c.Do(req)
		if err != nil {
			inflight <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inflight <- string(b)
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the old upstream")
	}

	cfg := h.config()
	cfg.Apps[0].APIs[1].Upstream = next.URL
	ch := h.reload(cfg)
	if strings.Join(ch.Changed, ",") != "demo" || ch.SessionsEnded != 0 {
		t.Errorf("changes = %+v, want demo changed and no session ended", ch)
	}
	if code, got := h.apiGet(c, "/slow/y"); code != http.StatusOK || got != "new" {
		t.Errorf("after the reload: %d %q, want 200 from the new upstream", code, got)
	}
	done()
	if got := <-inflight; got != "old" {
		t.Errorf("the request in flight got %q, want the old upstream's answer", got)
	}
	after := h.gw.cur.Load().apps[0]
	if after == before || after.disc != before.disc || after.refresher != before.refresher {
		t.Error("the changed app should be new, with the old one's discovery and refresher")
	}
}

// TestReloadUnchangedAppKept: an app whose config did not change is kept
// as it is (proxies, discovery), and a reload changing only the rate
// limits still swaps the routes.
func TestReloadUnchangedAppKept(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	before := h.gw.cur.Load()
	cfg := h.config()
	cfg.Server.RateLimits.Login = Limit{Rate: 1, Burst: 1}
	ch := h.reload(cfg)
	after := h.gw.cur.Load()
	if after == before || after.apps[0] != before.apps[0] {
		t.Error("want a new snapshot with the same app")
	}
	if strings.Join(ch.Unchanged, ",") != "demo" || ch.Changed != nil {
		t.Errorf("changes = %+v, want demo unchanged", ch)
	}
	c := h.browser()
	codes := []int{h.get(c, "/bff/login").StatusCode, h.get(c, "/bff/login").StatusCode}
	if codes[1] != http.StatusTooManyRequests {
		t.Errorf("logins after the reload: %v, want the second limited (429)", codes)
	}
	// Another reload with the same limit keeps the clients' buckets.
	h.reload(h.config())
	if code := h.get(c, "/bff/login").StatusCode; code != http.StatusTooManyRequests {
		t.Errorf("login after a reload with the same limit: %d, want 429 (the bucket kept)", code)
	}
}

// TestReloadInvalidRefusedWhole: a config with several problems is
// refused with all of them, and nothing changes.
func TestReloadInvalidRefusedWhole(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	before := h.gw.cur.Load()
	cfg := h.config()
	bad := cfg.Apps[0]
	bad.Name, bad.Issuer = "second", "not a url"
	cfg.Apps = append(cfg.Apps, bad) // also the same path prefix and hosts
	cfg.Apps[0].APIs[0].Upstream = "http://127.0.0.1:1"
	_, err := h.gw.Reload(context.Background(), cfg)
	if err == nil {
		t.Fatal("reload of an invalid config: no error")
	}
	for _, want := range []string{"apps[1].issuer", "apps[1].path_prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if h.gw.cur.Load() != before {
		t.Error("the snapshot changed")
	}
	if code, _ := h.apiGet(c, "/api/x"); code != http.StatusOK {
		t.Errorf("API after the refused reload: %d, want 200 from the old upstream", code)
	}
}

// TestReloadClientChangedEndsSessions: when the app's client_id changes,
// its sessions (minted for the old client) are ended with cause config;
// a new login goes through the new client.
func TestReloadClientChangedEndsSessions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	h.op.AddClient("second", "second-secret-second-secret-0123456789", h.srv.URL+"/bff/callback")
	// Sessions another replica, reloaded earlier, created for the new
	// client: spared.
	ctx := context.Background()
	var spared []string
	for _, aud := range []string{`"second"`, `["other","second"]`} {
		s := &session.Session{ID: session.NewID(), App: "demo", Issuer: h.op.URL, Subject: "bob",
			Claims: []byte(`{"aud":` + aud + `}`), CreatedAt: time.Now(), LastSeen: time.Now()}
		if err := h.mgr.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		spared = append(spared, s.ID)
	}
	cfg := h.config()
	cfg.Apps[0].ClientID, cfg.Apps[0].ClientSecret = "second", "second-secret-second-secret-0123456789"
	ch := h.reload(cfg)
	if ch.SessionsEnded != 1 {
		t.Errorf("sessions ended = %d, want 1", ch.SessionsEnded)
	}
	for _, id := range spared {
		if _, err := h.mgr.Get(ctx, id); err != nil {
			t.Errorf("a session minted for the new client was ended: %v", err)
		}
	}
	if code, _ := h.apiGet(c, "/api/x"); code != http.StatusUnauthorized {
		t.Errorf("old session after the client changed: %d, want 401", code)
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_sessions_ended_total", map[string]string{"app": "demo", "cause": "config"}); got != 1 {
		t.Errorf(`bffgate_sessions_ended_total{cause="config"} = %v, want 1`, got)
	}
	h.waitReady() // the new client's discovery
	c2 := h.login("/")
	if code, _ := h.apiGet(c2, "/api/x"); code != http.StatusOK {
		t.Errorf("new session: %d, want 200", code)
	}
}

// TestReloadIssuerChangedRefusesOldSessions: a session of the old issuer
// that survived (another replica created it, say) is refused: an app
// never serves a session of another issuer.
func TestReloadIssuerChangedRefusesOldSessions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	op2 := testop.New(t, testop.Config{ClientID: h.op.ClientID(), ClientSecret: h.op.ClientSecret()})
	op2.SetRedirectURL(h.srv.URL + "/bff/callback")
	c := h.login("/")
	cfg := h.config()
	cfg.Apps[0].Issuer = op2.URL
	// Bypass the end at reload: put the session back as a late replica
	// would have created it.
	s := h.sessionOf(c)
	ch := h.reload(cfg)
	if ch.SessionsEnded != 1 {
		t.Errorf("sessions ended = %d, want 1", ch.SessionsEnded)
	}
	if err := h.mgr.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.apiGet(c, "/api/x"); code != http.StatusUnauthorized {
		t.Errorf("session of the old issuer: %d, want 401", code)
	}
	h.waitReady()
	if code, _ := h.apiGet(h.login("/"), "/api/x"); code != http.StatusOK {
		t.Errorf("session of the new issuer: %d, want 200", code)
	}
}

// TestReloadAppsAddedAndRemoved: a new app serves its routes at once; a
// removed app's sessions are ended (cause config) and its routes are
// gone.
func TestReloadAppsAddedAndRemoved(t *testing.T) {
	h := newHarness(t, harnessOpts{more: func(demo AppConfig) []AppConfig {
		two := demo
		two.Name, two.PathPrefix, two.PostLogoutRedirect, two.APIs = "two", "/two/", "", nil
		return []AppConfig{two}
	}})
	ctx := context.Background()
	if err := h.mgr.Create(ctx, &session.Session{ID: session.NewID(), App: "two", Issuer: h.op.URL, Subject: "bob",
		CreatedAt: time.Now(), LastSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	three := cfg.Apps[1]
	three.Name, three.PathPrefix, three.PostLogoutRedirect = "three", "/three/", "/three/"
	cfg.Apps[1] = three
	ch := h.reload(cfg)
	if strings.Join(ch.Added, ",") != "three" || strings.Join(ch.Removed, ",") != "two" || ch.SessionsEnded != 1 {
		t.Errorf("changes = %+v, want three added, two removed, 1 session ended", ch)
	}
	if left, _ := h.mgr.List(ctx, session.Filter{App: "two"}); len(left) != 0 {
		t.Errorf("%d sessions of the removed app left", len(left))
	}
	h.waitReady()
	resp := h.get(h.browser(), "/three/bff/login")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), h.op.URL) {
		t.Errorf("new app's login: %d to %q, want 302 to the IdP", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code := h.get(h.browser(), "/two/bff/user", "X-CSRF", "1").StatusCode; code == http.StatusUnauthorized {
		t.Errorf("removed app's /bff/user: %d, want it gone (the catch-all app serves the path)", code)
	}
}

// TestReloadAppIdPDown: a new app whose IdP does not answer is taken as
// at the start: the reload succeeds, discovery retries in the
// background, /readyz says why, its login answers 503 and the other apps
// go on; a reload that removes it stops its discovery.
func TestReloadAppIdPDown(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	cfg := h.config()
	down := cfg.Apps[0]
	down.Name, down.PathPrefix, down.PostLogoutRedirect, down.APIs = "down", "/down/", "/down/", nil
	down.Issuer = "http://127.0.0.1:1"
	cfg.Apps = append(cfg.Apps, down)
	h.reload(cfg)
	if err := h.gw.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "app down") {
		t.Errorf("Ready = %v, want app down's discovery not done", err)
	}
	if code := h.get(h.browser(), "/down/bff/login").StatusCode; code != http.StatusServiceUnavailable {
		t.Errorf("login of the app whose IdP is down: %d, want 503", code)
	}
	if code, _ := h.apiGet(c, "/api/x"); code != http.StatusOK {
		t.Errorf("the other app's API: %d, want 200", code)
	}
	disc := h.gw.cur.Load().apps[1].disc
	cfg.Apps = cfg.Apps[:1]
	h.reload(cfg)
	select {
	case <-disc.done:
	default:
		t.Error("the removed app's discovery still runs")
	}
	h.waitReady()
}
