package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// defaultServiceName is service.name without OTEL_SERVICE_NAME.
const defaultServiceName = "bffgate"

// tracing is the gateway's OpenTelemetry tracer provider, configured by
// the standard OTEL_* environment variables; provider is nil when
// tracing is off, and then nothing was started.
type tracing struct {
	provider *sdktrace.TracerProvider
}

// tp returns the provider for the gateway's parts: nil when off.
func (t tracing) tp() trace.TracerProvider {
	if t.provider == nil {
		return nil
	}
	return t.provider
}

// shutdown flushes the spans not yet exported and stops the exporter,
// within ctx.
func (t tracing) shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// newTracing reads the OTEL_* environment. Tracing is on when an OTLP
// endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER is "otlp";
// off when OTEL_SDK_DISABLED is "true" or OTEL_TRACES_EXPORTER is "none".
// The protocol is OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, "http/protobuf"
// (default) or "grpc". The SDK and the exporter read the rest from the
// process environment: OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _CERTIFICATE, _COMPRESSION, _INSECURE.
func newTracing(ctx context.Context, getenv func(string) string, logger *slog.Logger) (tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return tracing{}, nil
	}
	endpoint := firstEnv(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return tracing{}, nil
	case "":
		if endpoint == "" {
			return tracing{}, nil
		}
	case "otlp":
	default:
		return tracing{}, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", exp)
	}
	var exporter sdktrace.SpanExporter
	var err error
	switch proto := firstEnv(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"); proto {
	case "", "http/protobuf":
		var opts []otlptracehttp.Option
		if u := httpTracesURL(getenv); u != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		}
		exporter, err = otlptracehttp.New(ctx, opts...)
	case "grpc":
		var opts []otlptracegrpc.Option
		if endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		exporter, err = otlptracegrpc.New(ctx, opts...)
	default:
		return tracing{}, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported (http/protobuf or grpc)", proto)
	}
	if err != nil {
		return tracing{}, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		_ = exporter.Shutdown(ctx)
		return tracing{}, fmt.Errorf("otel resource: %w", err)
	}
	otelLogOnce.Do(func() {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("opentelemetry", "err", err) }))
	})
	return tracing{provider: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))}, nil
}

// otelLogOnce sets OpenTelemetry's error handler, a global, once per
// process.
var otelLogOnce sync.Once

func firstEnv(getenv func(string) string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	return ""
}

// httpTracesURL is the OTLP/HTTP traces URL: the traces endpoint as is,
// or the base endpoint with /v1/traces, as the specification says.
func httpTracesURL(getenv func(string) string) string {
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); u != "" {
		return u
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); u != "" {
		return strings.TrimSuffix(u, "/") + "/v1/traces"
	}
	return ""
}

// traceRedis adds the go-redis OpenTelemetry hooks to rdb: a span per
// command (or pipeline) made under a traced operation, without the
// command's arguments (they hold tokens) or its caller.
func traceRedis(rdb redis.UniversalClient, tp trace.TracerProvider) error {
	if tp == nil {
		return nil
	}
	return redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(childOnly{tp: tp}),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
	)
}

// childOnly starts spans only under a valid span: the background loops
// (pub/sub, the notifier queue's blocking reads, expiry sweeps) would
// otherwise send a root span per poll.
type childOnly struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (c childOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childOnlyTracer{t: c.tp.Tracer(name, opts...)}
}

type childOnlyTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (c childOnlyTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx) // a no-op span
	}
	return c.t.Start(ctx, name, opts...)
}
