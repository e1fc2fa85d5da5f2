package upstream

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/bffgate/bffgate/upstream"

// traceContext is the W3C Trace Context propagator: it carries a
// notification's parent span through the queue and every attempt's span
// to the receiver.
var traceContext propagation.TraceContext

// traceparent returns the traceparent header of ctx's span, or "" when
// ctx has no valid span (tracing off).
func traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c["traceparent"]
}

// startAttempt starts the span of one delivery attempt, a child of the
// span that queued n. Without a tracer provider it returns ctx and a
// no-op span.
func (nt *Notifier) startAttempt(ctx context.Context, n Notification) (context.Context, trace.Span) {
	tp := nt.cfg.TracerProvider
	if tp == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	if n.Traceparent != "" {
		ctx = traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": n.Traceparent})
	}
	return tp.Tracer(tracerName).Start(ctx, "upstream.notify", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("bffgate.app", n.App),
			attribute.String("bffgate.downstream", n.Target),
			attribute.Int("bffgate.attempt", n.Attempts),
		))
}

// endAttempt records an attempt's outcome on its span and ends it.
func endAttempt(span trace.Span, err error) {
	var se *StatusError
	if errors.As(err, &se) {
		span.SetAttributes(attribute.Int("http.response.status_code", se.Code))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
