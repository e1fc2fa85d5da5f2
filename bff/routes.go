package bff

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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
	e.Use(g.observe, trustedForwarding(g.cfg.Server.TrustedProxies))
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
		api.proxy.ServeSession(c.Response(), r, s)
		return nil
	}
	a.frontend.ServeHTTP(c.Response(), r)
	return nil
}

// observe is the outermost middleware: request id, panic recovery,
// metrics and one access log line per request (path only: queries carry
// codes and states).
func (g *Gateway) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		rid := newRequestID()
		c.Set("request_id", rid)
		c.SetRequest(c.Request().WithContext(withRequestID(c.Request().Context(), rid)))
		c.Response().Header().Set(echo.HeaderXRequestID, rid)
		defer func() {
			if p := recover(); p != nil {
				g.logger.ErrorContext(c.Request().Context(), "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", p)
				g.handleError(err, c)
				err = nil
			}
			if err != nil {
				g.handleError(err, c)
				err = nil
			}
			app, _ := c.Get("app").(string)
			kind, _ := c.Get("route").(string)
			if kind == "" {
				kind = routeOther
			}
			status := c.Response().Status
			d := time.Since(start)
			g.metrics.requests.WithLabelValues(app, kind, strconv.Itoa(status)).Inc()
			g.metrics.latency.WithLabelValues(app, kind).Observe(d.Seconds())
			if g.cfg.Server.AccessLog && g.logger.Enabled(c.Request().Context(), levelAccess) {
				g.logger.LogAttrs(c.Request().Context(), levelAccess, "request", slog.String("app", app), slog.String("route", kind),
					slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path),
					slog.Int("status", status), slog.Float64("duration_ms", float64(d.Microseconds())/1000))
			}
		}()
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get("request_id").(string)
	return id
}

// Request ids are a random per-process prefix and a counter: unique
// across replicas and restarts, without a random read per request.
var (
	requestIDPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	requestIDCounter atomic.Uint64
)

func newRequestID() string {
	return requestIDPrefix + strconv.FormatUint(requestIDCounter.Add(1), 36)
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
