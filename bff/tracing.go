package bff

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/bffgate/bffgate/internal/spans"
)

const tracerName = "github.com/bffgate/bffgate/bff"

// traceRequests is the middleware of a gateway that traces (Deps.
// TracerProvider set): each request gets one server span, continuing the
// browser's W3C traceparent. Every span the request's handlers start is
// its child (spans.Start), and a proxied request's traceparent names it as
// the upstream's parent (proxy.propagate). A gateway that does not trace
// does not install it: its request path is unchanged.
func traceRequests(tp trace.TracerProvider) echo.MiddlewareFunc {
	tracer := tp.Tracer(tracerName)
	var tc propagation.TraceContext
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			ctx := tc.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			// The route template, never the path or the query (codes,
			// states, handles).
			route := c.Path()
			ctx, span := tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.request.method", r.Method),
					attribute.String("http.route", route),
				))
			defer span.End() // also when the handler panics (http.ErrAbortHandler)
			c.SetRequest(r.WithContext(ctx))
			err := next(c)
			app, kind := requestLabels(c)
			if kind == routeAPI || kind == routeFrontend { // the catch-all route: name the proxy
				span.SetName("proxy " + app + " " + kind)
			}
			status := c.Response().Status
			span.SetAttributes(
				attribute.Int("http.response.status_code", status),
				attribute.String("bffgate.app", app),
				attribute.String("bffgate.route", kind),
			)
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return err
		}
	}
}

// tracing reports whether tp traces: set, and not a no-op provider.
func tracing(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, isNoop := tp.(noop.TracerProvider)
	return !isNoop
}

// spanHandler starts a span for a handler under the request's and
// returns the function that ends it with the handler's error:
//
//	defer spanHandler(c, "bff.login", app)(&err)
func spanHandler(c echo.Context, name, app string) func(*error) {
	r := c.Request()
	ctx, span := spans.Start(r.Context(), tracerName, name, attribute.String("bffgate.app", app))
	if !span.SpanContext().IsValid() { // not tracing: nothing to end
		return func(*error) {}
	}
	c.SetRequest(r.WithContext(ctx))
	return func(err *error) {
		c.SetRequest(c.Request().WithContext(r.Context()))
		spans.End(span, *err)
	}
}
