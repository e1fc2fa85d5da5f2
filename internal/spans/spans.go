// Package spans starts and ends the spans of the gateway's packages
// (bff, logout, proxy) under the span already in a context: with the
// tracer provider that made that span — the request's when the gateway
// traces, a no-op otherwise — so that no package needs a tracer of its
// own. It imports nothing of the project.
package spans

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Start starts a span named name under the one in ctx, with the tracer
// of that span's provider named tracer (the calling package's path).
func Start(ctx context.Context, tracer, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(tracer).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End records err (if any) on span and ends it.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
