package bff

import (
	"context"

	"github.com/labstack/echo/v4"
)

// reqInfo is what the gateway keeps about one request as it passes: its
// id, and the app and route kind that label its metrics and access-log
// line. It is the request's context too (it wraps the server's), so that
// the id reaches every log line (LogHandler) and error body: one
// allocation per request, where a context value, Echo's per-request map
// and the boxed strings in it took six.
//
// app and route are set by the request's handler goroutine (dispatch and
// the handlers) and read by the same goroutine's recordRequest; other
// goroutines holding the context read only the id, which never changes.
type reqInfo struct {
	context.Context
	id    string
	idHdr [1]string // the X-Request-ID response header's value
	app   string
	route string
}

type ctxKeyRequestInfo struct{}

// Value implements context.Context.
func (ri *reqInfo) Value(key any) any {
	if key == (ctxKeyRequestInfo{}) {
		return ri
	}
	return ri.Context.Value(key)
}

// requestInfo returns the request's reqInfo, or nil outside the
// requestIDs middleware.
func requestInfo(ctx context.Context) *reqInfo {
	ri, _ := ctx.Value(ctxKeyRequestInfo{}).(*reqInfo)
	return ri
}

// requestIDFrom returns the request id in ctx, or "".
func requestIDFrom(ctx context.Context) string {
	if ri := requestInfo(ctx); ri != nil {
		return ri.id
	}
	return ""
}

func requestID(c echo.Context) string { return requestIDFrom(c.Request().Context()) }

// requestIDs gives every request an id: in the X-Request-ID response
// header and in the request's context (a reqInfo), where LogHandler adds
// it to every log line and the error boundary to every error body. An
// incoming X-Request-ID is kept only from a trusted proxy
// (trustedForwarding removes it otherwise).
func requestIDs() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			ri := &reqInfo{Context: r.Context(), id: r.Header.Get(echo.HeaderXRequestID)}
			if ri.id == "" {
				ri.id = newRequestID()
			}
			ri.idHdr[0] = ri.id
			c.Response().Header()[echo.HeaderXRequestID] = ri.idHdr[:]
			c.SetRequest(r.WithContext(ri))
			return next(c)
		}
	}
}

// setApp labels the request with the app that serves it.
func setApp(c echo.Context, app string) {
	if ri := requestInfo(c.Request().Context()); ri != nil {
		ri.app = app
	}
}

// setRoute labels the request with its route kind (the route* constants).
func setRoute(c echo.Context, kind string) {
	if ri := requestInfo(c.Request().Context()); ri != nil {
		ri.route = kind
	}
}

// requestLabels returns the app and route kind the request was labelled
// with; routeOther when no route set one.
func requestLabels(c echo.Context) (app, route string) {
	route = routeOther
	if ri := requestInfo(c.Request().Context()); ri != nil {
		app = ri.app
		if ri.route != "" {
			route = ri.route
		}
	}
	return app, route
}
