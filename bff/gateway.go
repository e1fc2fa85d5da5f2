// Package bff is the gateway's HTTP surface and the only package that
// imports Echo: the routes of every app (login, callback, user, logout and
// the proxied paths), the middleware, the login flow with go-oidc and
// x/oauth2, the admin listener, and the one error boundary.
package bff

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/proxy"
	"github.com/bffgate/bffgate/session"
)

// Config is the gateway's configuration: [server] and [[apps]].
type Config struct {
	Server ServerConfig
	Apps   []AppConfig
}

// Validate reports every problem, each prefixed with its key path.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, PrefixErrors("server.", c.Server.Validate()))
	if len(c.Apps) == 0 {
		errs = append(errs, errors.New("apps: at least one [[apps]] entry is required"))
	}
	for i := range c.Apps {
		errs = append(errs, PrefixErrors(fmt.Sprintf("apps[%d].", i), c.Apps[i].Validate()))
		for j := range i {
			a, b := &c.Apps[i], &c.Apps[j]
			if a.Name == b.Name {
				errs = append(errs, fmt.Errorf("apps[%d].name: %q is already the name of apps[%d]", i, a.Name, j))
			}
			if a.PathPrefix == b.PathPrefix && hostsOverlap(a.Hosts, b.Hosts) {
				errs = append(errs, fmt.Errorf("apps[%d].path_prefix: %q with these hosts is already served by apps[%d]", i, a.PathPrefix, j))
			}
		}
	}
	return errors.Join(errs...)
}

func hostsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	for _, h := range a {
		if slices.Contains(b, h) {
			return true
		}
	}
	return false
}

// PrefixErrors prefixes each error joined in err (one level) with prefix,
// the key path of a config section ("server.", "apps[0]."). cmd uses it
// for its own sections, so that every config error reads the same.
func PrefixErrors(prefix string, err error) error {
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return errors.Join(out...)
}

// Deps are the gateway's collaborators.
type Deps struct {
	Sessions *session.Manager
	Cookies  *session.CookieCodec
	// Transport carries proxied requests to the upstreams.
	Transport http.RoundTripper
	// IdPClient talks to the identity providers (discovery, JWKS, token,
	// revocation).
	IdPClient *http.Client
	Metrics   *prometheus.Registry
	Logger    *slog.Logger
	// Secret derives the login-state cookie keys.
	Secret string
	// Timeouts are the session lifetimes the store enforces.
	Timeouts session.Timeouts
	// Issuer serves the gateway's own discovery document and JWKS, for
	// downstream apps that validate its logout tokens. Optional.
	Issuer Issuer
	// Downstream gives the front-channel logout URLs of the downstream
	// apps for an ended session. Optional.
	Downstream Downstream
	// Replay remembers the jti of accepted logout tokens; nil means an
	// in-memory cache (use a shared one with several replicas).
	Replay logout.ReplayCache
	// ClientTokens shares the client tokens of token "client" and
	// "user_or_client" between replicas (session.RedisClientTokens); nil
	// keeps them per process.
	ClientTokens proxy.ClientTokenStore
	// TracerProvider traces every request (one server span, continuing
	// the browser's traceparent and passed on to the upstream) and the
	// login, refresh and logout steps under it. Nil or a no-op provider
	// means no tracing, and no tracing middleware on the request path.
	TracerProvider trace.TracerProvider
}

// Issuer is the gateway as an OpenID Provider for its downstream apps.
type Issuer interface {
	JWKS() []byte
	Discovery(jwksURI string) []byte
}

// Downstream knows the downstream apps' front-channel logout URLs.
type Downstream interface {
	FrontchannelURLs(s *session.Session) []string
}

// levelAccess is the level of the one access-log line per request.
const levelAccess = slog.LevelInfo

// Gateway serves every configured app. The handlers of each app's routes
// are built in New (site) with exactly the collaborators they use; the
// Gateway keeps what spans the apps: discovery's lifetime, readiness,
// the admin listener, the outer middleware and the error boundary.
//
// The apps and their routes are an immutable snapshot that Reload swaps
// atomically: a request runs on the snapshot it started with, and the
// request path takes no lock.
type Gateway struct {
	// server is [server] as at the start: the keys that need a restart
	// (listeners, trusted proxies, access log) are read from it; the
	// reloadable ones (rate limits, body cap) from the snapshot.
	server   ServerConfig
	sessions *session.Manager
	logout   *logout.Service
	events   *broker
	logger   *slog.Logger
	pages    pages
	metrics  *metrics
	registry *prometheus.Registry
	// parts, shared, issuer and public build the apps, sites and routes,
	// at New and at every Reload.
	parts  appParts
	shared shared
	issuer Issuer
	public *url.URL
	cur    atomic.Pointer[snapshot]
	// limiters are the rate limiters by route kind, kept across reloads
	// while their limit stays (guarded by mu after New).
	limiters map[string]limiter
	// tracer is Deps.TracerProvider when it traces, else nil.
	tracer trace.TracerProvider
	// mu orders Start, Reload and Close; ctx is Start's (nil before).
	mu       sync.Mutex
	ctx      context.Context
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	reloader Reloader
}

// snapshot is one configuration's apps and routes. It is never changed
// once stored.
type snapshot struct {
	apps []*app
	echo *echo.Echo
	// server is the [server] the routes were built with.
	server ServerConfig
}

// New builds the gateway: one app runtime (with its proxies) and one site
// (its handlers) per [[apps]] entry, and the routes. Discovery starts
// with Start.
func New(cfg Config, deps Deps) (_ *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pub, _ := url.Parse(strings.TrimSuffix(cfg.Server.PublicURL, "/"))
	idp := cmp.Or(deps.IdPClient, http.DefaultClient)
	replay := deps.Replay
	if replay == nil {
		replay = logout.NewMemoryReplayCache()
	}
	g := &Gateway{
		server:   cfg.Server,
		sessions: deps.Sessions,
		logger:   deps.Logger,
		pages:    pages{logger: deps.Logger},
		metrics:  newMetrics(deps.Metrics),
		registry: deps.Metrics,
		events:   newBroker(cfg.Server.ConnLimits, deps.Sessions, deps.Metrics),
		logout: logout.NewService(logout.ServiceConfig{
			IdPClient: idp,
			HandleKey: session.DeriveKey(deps.Secret, "logout-handle", 32),
		}, deps.Sessions, deps.Metrics, deps.Logger),
	}
	g.public, g.issuer = pub, deps.Issuer
	if tracing(deps.TracerProvider) {
		g.tracer = deps.TracerProvider
	}
	g.parts = appParts{
		public: pub, transport: deps.Transport, idp: idp, sessions: deps.Sessions, logger: deps.Logger,
		replay: replay, clients: g.logout, trustForwarded: len(cfg.Server.TrustedProxies) > 0,
		clientTokenStore: deps.ClientTokens, clientGrants: g.metrics.clientGrants,
		jwksOverflow: g.metrics.jwksOverflow, tracing: g.tracer != nil,
	}
	g.shared = shared{
		public: pub, sessions: deps.Sessions, cookies: deps.Cookies,
		states: newStateCookies(deps.Secret, pub.Scheme == "https"), pages: g.pages,
		logout: g.logout, events: g.events, down: deps.Downstream, timeouts: deps.Timeouts,
		idp: idp, logins: g.metrics.logins, maxBody: cfg.Server.MaxBodyBytes,
		browsers: newBrowsers(), handleKey: session.DeriveKey(deps.Secret, "session-list-handle", 32),
	}
	defer func() {
		if err != nil { // no Gateway to Close: stop the revoker's workers now
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = g.logout.Close(stopped)
		}
	}()
	names := make([]string, len(cfg.Apps))
	for i, ac := range cfg.Apps {
		names[i] = ac.Name
	}
	live, err := proxy.NewLive(proxy.LiveConfig{Sessions: deps.Sessions, Metrics: deps.Metrics, Apps: names, Logger: deps.Logger, Absolute: deps.Timeouts.Absolute})
	if err != nil {
		return nil, fmt.Errorf("live connections: %w", err)
	}
	g.parts.live = live
	apps := make([]*app, 0, len(cfg.Apps))
	for _, ac := range cfg.Apps {
		a, err := newApp(ac, g.parts, nil)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", ac.Name, err)
		}
		apps = append(apps, a)
	}
	g.cur.Store(g.snapshot(apps, cfg.Server))
	if err := g.sessions.RegisterMetrics(deps.Metrics, g.appNames()); err != nil {
		return nil, fmt.Errorf("session metrics: %w", err)
	}
	g.sessions.Observe(g.logout) // revokes the refresh tokens
	g.sessions.Observe(g.events)
	g.sessions.Observe(live) // cuts the session's WebSockets and streams
	return g, nil
}

// snapshot builds the sites and routes of apps, with the reloadable
// [server] keys of srv.
func (g *Gateway) snapshot(apps []*app, srv ServerConfig) *snapshot {
	sh := g.shared
	sh.maxBody = srv.MaxBodyBytes
	sites := make([]*site, len(apps))
	for i, a := range apps {
		sites[i] = newSite(a, sh)
	}
	return &snapshot{apps: apps, echo: g.routes(sites, srv.RateLimits, g.issuer, g.public), server: srv}
}

// appNames are the configured app names, in config order.
func (g *Gateway) appNames() []string {
	apps := g.cur.Load().apps
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.cfg.Name
	}
	return names
}

// Handler returns the gateway's HTTP handler: the routes of the current
// snapshot, loaded once per request.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.cur.Load().echo.ServeHTTP(w, r)
	})
}

// Start begins OIDC discovery for every app in the background. It
// returns at once; Ready tells when discovery is done.
func (g *Gateway) Start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx, g.cancel = context.WithCancel(ctx)
	for _, a := range g.cur.Load().apps {
		if !a.disc.started() {
			a.startDiscovery(g.ctx, &g.wg, g.logger)
		}
	}
}

// Close stops discovery and drains the refresh-token revocations until
// ctx ends (logout.Service.Close); their workers are gone when it returns.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.cancel != nil {
		g.cancel()
	}
	g.mu.Unlock()
	g.wg.Wait()
	return g.logout.Close(ctx)
}

// Ready reports whether every app's discovery is done and the session
// store answers.
func (g *Gateway) Ready(ctx context.Context) error {
	apps := g.cur.Load().apps
	for _, a := range apps {
		if err := a.disc.err(); err != nil {
			return fmt.Errorf("app %s: configuration error: %w", a.cfg.Name, err)
		}
	}
	for _, a := range apps {
		if a.disc.get() == nil {
			return fmt.Errorf("app %s: oidc discovery not done", a.cfg.Name)
		}
	}
	if err := g.sessions.Ping(ctx); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	return nil
}

// frontchannelURLs returns the downstream front-channel logout URLs for
// the ended sessions (none without a Downstream).
func frontchannelURLs(down Downstream, ended ...*session.Session) []string {
	if down == nil {
		return nil
	}
	var out []string
	for _, s := range ended {
		out = append(out, down.FrontchannelURLs(s)...)
	}
	return out
}
