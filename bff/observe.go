package bff

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// observe is the gateway's outer middleware, outermost first: trusted
// forwarding headers, request id, then observeRequests (metrics and the
// access log, aborted responses, panic recovery). Errors go to the error
// boundary (handleError) once.
func (g *Gateway) observe() []echo.MiddlewareFunc {
	mw := []echo.MiddlewareFunc{
		trustedForwarding(g.server.TrustedProxies),
		requestIDs(),
	}
	if g.tracer != nil {
		mw = append(mw, traceRequests(g.tracer)) // inside requestIDs: the access log line has trace_id
	}
	return append(mw, g.observeRequests)
}

// chain composes mw (outermost first) once, around the handler the
// router chose for the request (c.Handler()). Echo composes the e.Use
// middleware for every request, one closure allocation each; chain
// composes them at start-up. It must be the only e.Use, since it does
// not call the next middleware.
func chain(mw ...echo.MiddlewareFunc) echo.MiddlewareFunc {
	h := func(c echo.Context) error { return c.Handler()(c) }
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return func(echo.HandlerFunc) echo.HandlerFunc { return h }
}

// recoverPanics turns a handler's panic into a logged 500. It re-panics
// http.ErrAbortHandler, which httputil.ReverseProxy uses to cut the
// client's connection when an upstream dies mid-body: swallowing it
// would turn a truncated body into a clean response.
func recoverPanics(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		StackSize:       8 << 10,
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			logger.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return fmt.Errorf("panic: %w", err)
		},
	})
}

// observeRequests is one layer, one clock read at each end, for what
// three middlewares did (Echo's request logger, recovery, and the count
// of aborted responses): it records every request (metrics and the
// access-log line, path only: queries carry codes and states) once its
// error went to the error boundary; it turns a handler's panic into a
// logged 500 (stack included); and a response cut by
// http.ErrAbortHandler, which httputil.ReverseProxy uses to cut the
// client's connection when an upstream dies mid-body, is counted and
// logged and its panic goes on to the server, which resets the
// connection or the HTTP/2 stream (swallowing it would turn a truncated
// body into a clean response).
func (g *Gateway) observeRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				g.recordRequest(c, c.Response().Status, time.Since(start))
				app, _ := requestLabels(c)
				g.logger.WarnContext(c.Request().Context(), "response aborted", "app", app,
					"method", c.Request().Method, "path", c.Request().URL.Path, "status", c.Response().Status)
				panic(p)
			}
			c.Error(panicError(c, g.logger, p))
			g.recordRequest(c, c.Response().Status, time.Since(start))
		}()
		if err := next(c); err != nil {
			c.Error(err)
		}
		g.recordRequest(c, c.Response().Status, time.Since(start))
		return nil
	}
}

// panicStackSize bounds the stack logged with a panic.
const panicStackSize = 8 << 10

// panicError logs a recovered panic p with the panicking goroutine's
// stack and returns the error the error boundary answers (a 500 that
// shows nothing of it). Call it from the deferred function that
// recovered p.
func panicError(c echo.Context, logger *slog.Logger, p any) error {
	err, ok := p.(error)
	if !ok {
		err = fmt.Errorf("%v", p)
	}
	stack := make([]byte, panicStackSize)
	stack = stack[:runtime.Stack(stack, false)]
	logger.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
	return fmt.Errorf("panic: %w", err)
}

// recordRequest updates the request metrics and writes the access-log
// line (when server.access_log is on).
func (g *Gateway) recordRequest(c echo.Context, status int, d time.Duration) {
	app, kind := requestLabels(c)
	m := g.metrics.request(app, kind, status)
	m.count.Inc()
	m.latency.Observe(d.Seconds())
	r := c.Request()
	if g.server.AccessLog && g.logger.Enabled(r.Context(), levelAccess) {
		g.logger.LogAttrs(r.Context(), levelAccess, "request", slog.String("app", app), slog.String("route", kind),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Float64("duration_ms", float64(d.Microseconds())/1000))
	}
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

// validRequestID reports whether an X-Request-ID from a trusted proxy is
// fit for logs and headers: 1 to 128 characters of [A-Za-z0-9._:-].
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// interim is the response writer handed to the proxies. Echo's Response
// takes the first WriteHeader as the final one, so an upstream's
// 100 Continue or 103 Early Hints would commit it and drop the real
// status; interim sends 1xx (except 101) straight to the connection and
// leaves the final status to Echo. It is one pointer: passing it as an
// http.ResponseWriter does not allocate.
type interim struct{ *echo.Response }

func (w interim) WriteHeader(code int) {
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols || w.Committed {
		w.Response.WriteHeader(code)
		return
	}
	// httputil.ReverseProxy clears the header map after each 1xx: keep
	// the request id for the final response.
	h := w.Header()
	if rid := h.Get(echo.HeaderXRequestID); rid != "" {
		w.Before(func() {
			if h.Get(echo.HeaderXRequestID) == "" {
				h.Set(echo.HeaderXRequestID, rid)
			}
		})
	}
	w.Writer.WriteHeader(code)
}
