package bff

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/proxy"
)

// Route kinds, the "route" label of the request metrics.
const (
	routeLogin        = "login"
	routeCallback     = "callback"
	routeUser         = "user"
	routeLogout       = "logout"
	routeSignedOut    = "signed_out"
	routeBackchannel  = "backchannel"
	routeFrontchannel = "frontchannel"
	routeEvents       = "events"
	routeCheckSession = "check_session"
	routeSilentLogin  = "silent_login"
	routeSessions     = "sessions"
	routeAPI          = "api"
	routeFrontend     = "frontend"
	routeWellKnown    = "well_known"
	routeOther        = "other"
)

// routes builds the Echo instance: per path prefix the /bff/* endpoints
// and the catch-all proxy of the apps under it.
func (g *Gateway) routes(sites []*site, limits RateLimits, issuer Issuer, public *url.URL) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = g.pages.handleError
	e.IPExtractor = ipExtractor(g.server.TrustedProxies)
	e.Use(chain(g.observe()...))
	loginLimit, backLimit, frontLimit := g.limiter(routeLogin, limits.Login), g.limiter(routeBackchannel, limits.Backchannel), g.limiter(routeFrontchannel, limits.Frontchannel)

	if issuer != nil {
		jwksURI := public.String() + "/.well-known/jwks.json"
		discovery := issuer.Discovery(jwksURI)
		e.GET("/.well-known/openid-configuration", func(c echo.Context) error {
			setRoute(c, routeWellKnown)
			c.Response().Header().Set("Cache-Control", "public, max-age=300")
			return c.JSONBlob(http.StatusOK, discovery)
		})
		e.GET("/.well-known/jwks.json", func(c echo.Context) error {
			setRoute(c, routeWellKnown)
			c.Response().Header().Set("Cache-Control", "public, max-age=60")
			return c.JSONBlob(http.StatusOK, issuer.JWKS())
		})
	}
	byPrefix := map[string][]*site{}
	for _, s := range sites {
		byPrefix[s.app.cfg.PathPrefix] = append(byPrefix[s.app.cfg.PathPrefix], s)
	}
	for prefix, list := range byPrefix {
		// Apps bound to hosts are tried before the catch-all one.
		slices.SortStableFunc(list, func(x, y *site) int { return len(y.app.cfg.Hosts) - len(x.app.cfg.Hosts) })
		base := strings.TrimSuffix(prefix, "/")
		bff := func(method, path, kind string, h func(*site, echo.Context) error, mw ...echo.MiddlewareFunc) {
			e.Add(method, base+"/bff/"+path, dispatch(list, kind, h), mw...)
		}
		bff(http.MethodGet, "login", routeLogin, func(s *site, c echo.Context) error { return s.login.start(c) }, loginLimit)
		bff(http.MethodGet, "silent-login", routeSilentLogin, func(s *site, c echo.Context) error { return s.login.silentStart(c) }, loginLimit)
		bff(http.MethodGet, "callback", routeCallback, func(s *site, c echo.Context) error { return s.login.callback(c) }, loginLimit)
		bff(http.MethodGet, "user", routeUser, func(s *site, c echo.Context) error { return s.user.serve(c) })
		bff(http.MethodGet, "logout", routeLogout, func(s *site, c echo.Context) error { return s.logout.rpInitiated(c) })
		bff(http.MethodPost, "logout", routeLogout, func(s *site, c echo.Context) error { return s.logout.rpInitiated(c) })
		bff(http.MethodGet, "signed-out", routeSignedOut, func(s *site, c echo.Context) error { return s.logout.signedOut(c) })
		bff(http.MethodGet, "frontchannel-logout", routeFrontchannel, func(s *site, c echo.Context) error { return s.logout.frontchannel(c) }, frontLimit)
		bff(http.MethodGet, "events", routeEvents, func(s *site, c echo.Context) error { return s.events.serve(c) })
		bff(http.MethodGet, "check-session", routeCheckSession, func(s *site, c echo.Context) error { return s.checkSession.serve(c) })
		bff(http.MethodGet, "sessions", routeSessions, func(s *site, c echo.Context) error { return s.sessions.list(c) })
		bff(http.MethodPost, "sessions/end", routeSessions, func(s *site, c echo.Context) error { return s.sessions.end(c) })
		bff(http.MethodGet, "client.js", routeOther, func(_ *site, c echo.Context) error { return handleClientJS(c) })
		e.Any(base+"/bff/backchannel-logout", dispatch(list, routeBackchannel, func(_ *site, c echo.Context) error {
			return backchannel(g.logout, c)
		}), backLimit)
		e.Any(base+"/bff/*", dispatch(list, routeOther, func(*site, echo.Context) error {
			return jsonError(http.StatusNotFound, "not_found", "no such gateway endpoint", nil)
		}))
		e.Any(base+"/*", dispatch(list, routeFrontend, func(s *site, c echo.Context) error { return s.proxy.serve(c) }))
		if base != "" {
			e.Any(base, func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, prefix) })
		}
	}
	return e
}

// dispatch picks the app for the request among those under one prefix
// (host-specific first), labels the route, and calls h with its site.
func dispatch(list []*site, kind string, h func(*site, echo.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		s := siteFor(c.Request(), list)
		if s == nil {
			return jsonError(http.StatusNotFound, "not_found", "no app serves this host", nil)
		}
		setApp(c, s.app.cfg.Name)
		setRoute(c, kind)
		return h(s, c)
	}
}

// siteFor picks the site for a request among those under one prefix.
func siteFor(r *http.Request, list []*site) *site {
	for _, s := range list {
		if len(s.app.cfg.Hosts) == 0 || slices.Contains(s.app.cfg.Hosts, r.Host) {
			return s
		}
	}
	return nil
}

// proxyDispatch is the catch-all route of an app: API paths go to their
// upstream with the user's session (bff → session → proxy → upstream),
// everything else to the frontend.
type proxyDispatch struct {
	apis     []apiRoute
	frontend *proxy.Proxy
	sess     appSession
	// maxBody caps request bodies (server.max_body_bytes; 0: no cap).
	maxBody int64
	// public and cfg give the app's origin (WebSocket handshakes).
	public *url.URL
	cfg    *AppConfig
}

func (d *proxyDispatch) serve(c echo.Context) error {
	r := c.Request()
	if !cleanPath(r.URL.Path) {
		return jsonError(http.StatusBadRequest, "invalid_request", "the path has dot segments, backslashes or control characters", nil)
	}
	if max := d.maxBody; max > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > max {
			return jsonError(http.StatusRequestEntityTooLarge, "invalid_request", "the request body is too large", nil)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, max)
	}
	for _, api := range d.apis {
		if !strings.HasPrefix(r.URL.Path, api.path) {
			continue
		}
		setRoute(c, routeAPI)
		if err := d.csrf(r); err != nil {
			return err
		}
		s, err := d.sess.loadView(r)
		if err != nil && (err != errUnauthorized || !api.anonymous) {
			return err
		}
		api.proxy.ServeSession(interim{c.Response()}, r, s)
		return nil
	}
	d.frontend.ServeHTTP(interim{c.Response()}, r)
	return nil
}

// csrf guards an API request: X-CSRF: 1, or, for a WebSocket handshake,
// which a browser cannot send with extra headers, an Origin that is the
// app's own (a page of another site cannot open a socket with the
// user's cookie: cross-site WebSocket hijacking).
func (d *proxyDispatch) csrf(r *http.Request) error {
	err := requireCSRF(r)
	if err == nil || !proxy.IsUpgrade(r) {
		return err
	}
	if o := r.Header.Get("Origin"); o == "" || o != appOrigin(d.public, d.cfg, r) {
		return jsonError(http.StatusForbidden, "forbidden", "a WebSocket must come from the app's own origin", nil)
	}
	return nil
}

// maxPathDecodes is how many rounds of percent-decoding cleanPath looks
// through (double and triple encoding); a path still encoded after that
// is refused.
const maxPathDecodes = 4

// cleanPath reports whether p, the request's decoded path, is safe to
// forward: no segment that a common server (Tomcat, Jetty, IIS, nginx)
// would treat as "." or "..", so that a path cannot climb out of an API
// prefix at the upstream, and no backslash (IIS reads it as "/"), control
// character or invalid UTF-8 (overlong forms such as %c0%ae). Upstreams
// may decode again, so it looks through every round of percent-decoding.
func cleanPath(p string) bool {
	for range maxPathDecodes {
		if !plainPath(p) {
			return false
		}
		if strings.IndexByte(p, '%') < 0 {
			return true
		}
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			return true // a lone "%": no server decodes it to anything
		}
		p = d
	}
	return false
}

// plainPath checks one round of cleanPath.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	if !utf8.ValidString(p) {
		return false
	}
	if !strings.Contains(p, "/.") {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if dotSegment(seg) {
			return false
		}
	}
	return true
}

// dotSegment reports whether a server may read seg as "." or "..": after
// dropping path parameters (Tomcat and Jetty read "..;x" as ".."), only
// dots and spaces (Windows drops trailing dots and spaces).
func dotSegment(seg string) bool {
	seg, _, _ = strings.Cut(seg, ";")
	if seg == "" || seg[0] != '.' {
		return false
	}
	return strings.Trim(seg, ". ") == ""
}
