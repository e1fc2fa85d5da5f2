package proxy

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/bffgate/bffgate/proxy"

// propagate sets the upstream request's traceparent and tracestate to
// the span in ctx: the gateway's own span of the request (Config.
// Propagate). Without a valid one it leaves the browser's headers.
func propagate(ctx context.Context, h http.Header) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	}
}
