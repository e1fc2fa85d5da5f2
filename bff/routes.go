package bff

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
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
	routeAPI          = "api"
	routeFrontend     = "frontend"
	routeWellKnown    = "well_known"
	routeOther        = "other"
)

// routes builds the Echo instance: per path prefix the /bff/* endpoints
// and the catch-all proxy.
func (g *Gateway) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = g.handleError
	e.IPExtractor = ipExtractor(g.cfg.Server.TrustedProxies)
	e.Use(chain(g.observe()...))
	limits := g.cfg.Server.RateLimits
	loginLimit, backLimit, frontLimit := rateLimit(limits.Login), rateLimit(limits.Backchannel), rateLimit(limits.Frontchannel)

	if g.issuer != nil {
		jwksURI := g.public.String() + "/.well-known/jwks.json"
		discovery := g.issuer.Discovery(jwksURI)
		e.GET("/.well-known/openid-configuration", func(c echo.Context) error {
			c.Set("route", routeWellKnown)
			c.Response().Header().Set("Cache-Control", "public, max-age=300")
			return c.JSONBlob(http.StatusOK, discovery)
		})
		e.GET("/.well-known/jwks.json", func(c echo.Context) error {
			c.Set("route", routeWellKnown)
			c.Response().Header().Set("Cache-Control", "public, max-age=60")
			return c.JSONBlob(http.StatusOK, g.issuer.JWKS())
		})
	}
	for prefix := range g.byPrefix {
		base := strings.TrimSuffix(prefix, "/")
		bff := func(method, path, kind string, h func(*app, echo.Context) error, mw ...echo.MiddlewareFunc) {
			e.Add(method, base+"/bff/"+path, g.dispatch(prefix, kind, h), mw...)
		}
		bff(http.MethodGet, "login", routeLogin, (*app).handleLogin, loginLimit)
		bff(http.MethodGet, "callback", routeCallback, (*app).handleCallback, loginLimit)
		bff(http.MethodGet, "user", routeUser, (*app).handleUser)
		bff(http.MethodGet, "logout", routeLogout, (*app).handleLogout)
		bff(http.MethodPost, "logout", routeLogout, (*app).handleLogout)
		bff(http.MethodGet, "signed-out", routeSignedOut, (*app).handleSignedOut)
		bff(http.MethodGet, "frontchannel-logout", routeFrontchannel, (*app).handleFrontchannel, frontLimit)
		bff(http.MethodGet, "events", routeEvents, (*app).handleEvents)
		bff(http.MethodGet, "check-session", routeCheckSession, (*app).handleCheckSession)
		bff(http.MethodGet, "client.js", routeOther, func(_ *app, c echo.Context) error { return handleClientJS(c) })
		e.Any(base+"/bff/backchannel-logout", g.dispatch(prefix, routeBackchannel, func(_ *app, c echo.Context) error {
			return g.handleBackchannel(c)
		}), backLimit)
		e.Any(base+"/bff/*", g.dispatch(prefix, routeOther, func(*app, echo.Context) error {
			return jsonError(http.StatusNotFound, "not_found", "no such gateway endpoint", nil)
		}))
		e.Any(base+"/*", g.dispatch(prefix, routeFrontend, (*app).handleProxy))
		if base != "" {
			e.Any(base, func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, prefix) })
		}
	}
	return e
}

// dispatch picks the app for the request, labels the route, and calls h.
func (g *Gateway) dispatch(prefix, kind string, h func(*app, echo.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := g.appFor(c.Request(), prefix)
		if a == nil {
			return jsonError(http.StatusNotFound, "not_found", "no app serves this host", nil)
		}
		c.Set("app", a.cfg.Name)
		c.Set("route", kind)
		return h(a, c)
	}
}

// handleProxy sends API paths to their upstream with the user's token
// and everything else to the frontend.
func (a *app) handleProxy(c echo.Context) error {
	r := c.Request()
	if !cleanPath(r.URL.Path) {
		return jsonError(http.StatusBadRequest, "invalid_request", "the path has dot segments", nil)
	}
	if max := a.g.cfg.Server.MaxBodyBytes; max > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > max {
			return jsonError(http.StatusRequestEntityTooLarge, "invalid_request", "the request body is too large", nil)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, max)
	}
	for _, api := range a.apis {
		if !strings.HasPrefix(r.URL.Path, api.path) {
			continue
		}
		c.Set("route", routeAPI)
		if err := requireCSRF(r); err != nil {
			return err
		}
		s, err := a.loadSession(r, true)
		if err != nil {
			return err
		}
		api.proxy.ServeSession(interim{c.Response()}, r, s)
		return nil
	}
	a.frontend.ServeHTTP(interim{c.Response()}, r)
	return nil
}

// cleanPath reports whether p has no "." or ".." segments, so that a
// path cannot climb out of an API prefix at the upstream.
func cleanPath(p string) bool {
	if !strings.Contains(p, "/.") {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
