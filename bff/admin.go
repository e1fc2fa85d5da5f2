package bff

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// AdminHandler serves the admin listener: /healthz (the process is up),
// /readyz (discovery done and store reachable), /metrics, and, when
// server.admin_token is set, the admin API under /admin/.
func (g *Gateway) AdminHandler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = g.pages.handleError
	e.Use(chain(trustedForwarding(g.server.TrustedProxies), requestIDs(), g.adminLog, recoverPanics(g.logger)))
	e.GET("/healthz", func(c echo.Context) error {
		return c.String(http.StatusOK, "ok\n")
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		c.Response().Header().Set("Cache-Control", "no-store")
		last := g.lastReloadLine()
		if err := g.Ready(ctx); err != nil {
			return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n"+last)
		}
		return c.String(http.StatusOK, "ready\n"+last)
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{Registry: g.registry})))
	if token := g.server.AdminToken; token != "" {
		auth := adminAuth(token)
		api := &adminAPI{sessions: g.sessions, logout: g.logout, apps: g.appNames, tracer: g.tracer}
		admin := e.Group("/admin", auth)
		admin.GET("/sessions", api.list)
		admin.POST("/sessions/revoke", api.revoke)
		if g.reloader != nil {
			admin.POST("/reload", g.reload)
		}
		// Profiles for operators chasing a hot spot, behind the same token.
		e.Any("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprofIndex)), auth)
	}
	return e
}

// adminLog logs every admin request once, without its credentials.
func (g *Gateway) adminLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			g.pages.handleError(err, c)
		}
		r := c.Request()
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			g.logger.InfoContext(r.Context(), "admin request", "event", "admin_request", "method", r.Method, "path", r.URL.Path,
				"status", c.Response().Status, "remote", r.RemoteAddr, "duration_ms", float64(time.Since(start).Microseconds())/1000)
		}
		return nil
	}
}

// adminAuth checks the bearer token in constant time.
func adminAuth(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "no-store")
			got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="bffgate-admin"`)
				return jsonError(http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required", nil)
			}
			return next(c)
		}
	}
}

// adminAPI is the admin API under /admin/: sessions listed and ended.
type adminAPI struct {
	sessions *session.Manager
	logout   *logout.Service
	// apps returns the configured app names (they change in a reload).
	apps func() []string
	// tracer is the gateway's when it traces, else nil: a revocation is
	// a trace of its own (the admin listener's requests are not traced).
	tracer trace.TracerProvider
}

// adminSession is a session as the admin API shows it: never a token,
// and the session id only hashed.
type adminSession struct {
	App       string    `json:"app"`
	Session   string    `json:"session"`
	Issuer    string    `json:"iss"`
	Subject   string    `json:"sub"`
	SID       string    `json:"sid,omitempty"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Upstreams []string  `json:"upstreams"`
}

func toAdmin(s *session.Session) adminSession {
	ups := s.Upstreams
	if ups == nil {
		ups = []string{}
	}
	return adminSession{App: s.App, Session: session.Hash(s.ID), Issuer: s.Issuer, Subject: s.Subject, SID: s.SID,
		Created: s.CreatedAt, LastSeen: s.LastSeen, Upstreams: ups}
}

// list is GET /admin/sessions?sub=…|sid=…|app=….
func (a *adminAPI) list(c echo.Context) error {
	f := session.Filter{App: c.QueryParam("app"), Subject: c.QueryParam("sub"), SID: c.QueryParam("sid")}
	if f.App == "" && f.Subject == "" && f.SID == "" {
		return jsonError(http.StatusBadRequest, "invalid_request", "give sub, sid or app", nil)
	}
	list, err := a.sessions.List(c.Request().Context(), f)
	if err != nil {
		return errStoreDown(err)
	}
	out := make([]adminSession, 0, len(list))
	for _, s := range list {
		out = append(out, toAdmin(s))
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": out, "count": len(out)})
}

// revokeRequest is the body of POST /admin/sessions/revoke: {"app","sub"},
// {"sid"} (optionally with "app") or {"session"} (the hashed id from the
// list).
type revokeRequest struct {
	App     string `json:"app"`
	Subject string `json:"sub"`
	SID     string `json:"sid"`
	Session string `json:"session"`
}

// revoke is POST /admin/sessions/revoke: it ends sessions with cause
// admin; downstream apps and open tabs are told as for any logout.
func (a *adminAPI) revoke(c echo.Context) (err error) {
	if a.tracer != nil {
		r := c.Request()
		ctx, span := a.tracer.Tracer(tracerName).Start(r.Context(), "POST /admin/sessions/revoke", trace.WithSpanKind(trace.SpanKindServer))
		defer func() { spans.End(span, err) }()
		c.SetRequest(r.WithContext(ctx))
	}
	var req revokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return jsonError(http.StatusRequestEntityTooLarge, "invalid_request", "the body is larger than 16 KiB", nil)
		}
		return jsonError(http.StatusBadRequest, "invalid_request", "the body must be a JSON object with app+sub, sid or session: "+jsonProblem(err), nil)
	}
	if dec.More() {
		return jsonError(http.StatusBadRequest, "invalid_request", "the body must hold one JSON object", nil)
	}
	ended, err := a.logout.Admin(c.Request().Context(), logout.AdminRequest(req), a.apps())
	switch {
	case errors.Is(err, logout.ErrAdminRequest):
		return jsonError(http.StatusBadRequest, "invalid_request", err.Error(), nil)
	case err != nil:
		return errStoreDown(err)
	}
	return c.JSON(http.StatusOK, map[string]int{"ended": ended})
}

// jsonProblem describes a JSON decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "invalid JSON"
}

// pprofIndex serves net/http/pprof's handlers under /debug/pprof/.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}
