package bff

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

const testSecret = "test-secret-test-secret-test-secret-0123"

// harness is a gateway in front of a test OP, a fake API and a fake
// frontend, all in process.
type harness struct {
	t        testing.TB
	op       *testop.OP
	gw       *Gateway
	srv      *httptest.Server
	api      *httptest.Server
	frontend *httptest.Server
	store    *session.MemoryStore
	mgr      *session.Manager
	cookies  *session.CookieCodec
	// apiRequests receives every request the API upstream got.
	apiRequests chan *http.Request
}

type harnessOpts struct {
	op     testop.Config
	mutate func(*AppConfig)
	// wrapStore, if set, wraps the memory store (to inject failures).
	wrapStore func(session.Store) session.Store
	replay    logout.ReplayCache
	server    func(*ServerConfig)
	// more, if set, adds apps after "demo" (given demo's config).
	more func(demo AppConfig) []AppConfig
	// logs, if set, gets the gateway's log lines (JSON).
	logs io.Writer
	// notReady skips waiting for the gateway to be ready.
	notReady bool
	// idp, if set, is the gateway's IdP client (default: a client over
	// http.DefaultTransport).
	idp *http.Client
	// tracer, if set, traces the gateway (Deps.TracerProvider).
	tracer trace.TracerProvider
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, apiRequests: make(chan *http.Request, 100)}
	h.op = testop.New(t, o.op)
	h.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.apiRequests <- r.Clone(context.Background()):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"auth":"`+r.Header.Get("Authorization")+`"}`)
	}))
	t.Cleanup(h.api.Close)
	h.frontend = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><p>spa "+r.URL.Path+" auth="+r.Header.Get("Authorization")+" cookie="+r.Header.Get("Cookie")+"</p>")
	}))
	t.Cleanup(h.frontend.Close)

	// The gateway's URL must exist before its config: listen first.
	h.srv = httptest.NewUnstartedServer(nil)
	public := "http://" + h.srv.Listener.Addr().String()
	h.op.SetRedirectURL(public + "/bff/callback")

	app := AppConfig{
		Name:         "demo",
		Issuer:       h.op.URL,
		ClientID:     h.op.ClientID(),
		ClientSecret: h.op.ClientSecret(),
		Frontend:     h.frontend.URL,
		APIs:         []APIConfig{{Path: "/api/", Upstream: h.api.URL}},
	}
	if o.mutate != nil {
		o.mutate(&app)
	}
	app.Defaults()
	apps := []AppConfig{app}
	if o.more != nil {
		for _, a := range o.more(app) {
			a.Defaults()
			apps = append(apps, a)
		}
	}
	srvCfg := ServerConfig{PublicURL: public}
	if o.server != nil {
		o.server(&srvCfg)
	}
	srvCfg.Defaults()
	timeouts := session.Timeouts{Idle: 30 * time.Minute, Absolute: 8 * time.Hour}
	h.store = session.NewMemoryStore(session.MemoryConfig{Timeouts: timeouts})
	t.Cleanup(func() { h.store.Close() })
	var store session.Store = h.store
	if o.wrapStore != nil {
		store = o.wrapStore(store)
	}
	h.mgr = session.NewManager(store, slog.New(slog.DiscardHandler))
	cookies, err := session.NewCookieCodec(session.CookieConfig{Secret: testSecret, MaxAge: timeouts.Absolute})
	if err != nil {
		t.Fatal(err)
	}
	h.cookies = cookies
	logger := slog.New(slog.DiscardHandler)
	if o.logs != nil {
		logger = slog.New(LogHandler(slog.NewJSONHandler(o.logs, nil)))
	}
	h.gw, err = New(Config{Server: srvCfg, Apps: apps}, Deps{
		Sessions:  h.mgr,
		Cookies:   cookies,
		Transport: http.DefaultTransport,
		IdPClient: cmp.Or(o.idp, &http.Client{Timeout: 5 * time.Second}),
		Metrics:   prometheus.NewRegistry(),
		Logger:    logger,
		Secret:    testSecret,
		Timeouts:  timeouts,
		Replay:    o.replay,

		TracerProvider: o.tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Config.Handler = h.gw.Handler()
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.gw.Close(context.Background()) })
	h.gw.Start(ctx)
	if !o.notReady {
		h.waitReady()
	}
	return h
}

func (h *harness) waitReady() {
	h.t.Helper()
	if err := proctest.Eventually(5*time.Second, 5*time.Millisecond, func() error {
		if err := h.gw.Ready(context.Background()); err != nil {
			return fmt.Errorf("gateway not ready: %v", err)
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every hop.
func (h *harness) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get performs a GET with optional headers (name, value pairs).
func (h *harness) get(c *http.Client, rawURL string, headers ...string) *http.Response {
	h.t.Helper()
	return h.do(c, http.MethodGet, rawURL, nil, headers...)
}

// do sends a request with optional headers (name, value pairs); a URL
// starting with / is the gateway's. The body is closed when the test
// ends.
func (h *harness) do(c *http.Client, method, rawURL string, body io.Reader, headers ...string) *http.Response {
	h.t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = h.srv.URL + rawURL
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// follow GETs rawURL and follows redirects by hand, returning the last
// response and the URLs visited.
func (h *harness) follow(c *http.Client, rawURL string) (*http.Response, []string) {
	h.t.Helper()
	var visited []string
	for range 10 {
		resp := h.get(c, rawURL)
		visited = append(visited, rawURL)
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return resp, visited
		}
		loc, err := resp.Location()
		if err != nil {
			h.t.Fatal(err)
		}
		rawURL = loc.String()
	}
	h.t.Fatalf("too many redirects: %v", visited)
	return nil, nil
}

// login signs a browser in through the test OP and returns it.
func (h *harness) login(returnURL string) *http.Client {
	h.t.Helper()
	c := h.browser()
	resp, visited := h.follow(c, "/bff/login?returnUrl="+url.QueryEscape(returnURL))
	last := visited[len(visited)-1]
	if !strings.HasPrefix(last, h.srv.URL) || strings.Contains(last, "/bff/callback") {
		h.t.Fatalf("login ended at %s (status %d: %s), want the returnUrl on the gateway", last, resp.StatusCode, body(h.t, resp))
	}
	return c
}

func body(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sessionCookie returns a signed-in browser's session cookie as a
// Cookie header value ("bffgate-demo=…").
func (h *harness) sessionCookie(c *http.Client) string {
	h.t.Helper()
	u, _ := url.Parse(h.srv.URL)
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == "bffgate-demo" {
			return k.String()
		}
	}
	h.t.Fatal("browser has no session cookie")
	return ""
}

// sessionOf returns the stored session of a signed-in browser.
func (h *harness) sessionOf(c *http.Client) *session.Session {
	h.t.Helper()
	r := &http.Request{Header: http.Header{"Cookie": {h.sessionCookie(c)}}}
	id, err := h.cookies.Decode(r, "demo")
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := h.mgr.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}
