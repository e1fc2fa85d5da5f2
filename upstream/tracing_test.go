package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Every delivery attempt is a span, a child of the span that queued the
// notification, and the receiver gets the attempt's traceparent.
func TestNotifierTracesAttempts(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	var mu sync.Mutex
	var parents []string
	rc := &receiver{answer: func(i int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents = append(parents, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.WriteHeader([]int{503, 200}[min(i, 1)])
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	nt := newTestNotifier(NotifierConfig{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, TracerProvider: tp}, srv.Client())
	nt.Start()

	ctx, logoutSpan := tp.Tracer("test").Start(context.Background(), "logout")
	if !nt.Enqueue(ctx, notification(srv.URL+"/logout", testToken(t))) {
		t.Fatal("Enqueue = false, want true")
	}
	logoutSpan.End()
	sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := nt.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}

	var attempts []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "upstream.notify" {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("%d upstream.notify spans, want 2 (503, then 200)", len(attempts))
	}
	want := logoutSpan.SpanContext()
	for i, s := range attempts {
		if s.Parent.TraceID() != want.TraceID() || s.Parent.SpanID() != want.SpanID() {
			t.Errorf("attempt %d: parent %s/%s, want the queuing span %s/%s", i, s.Parent.TraceID(), s.Parent.SpanID(), want.TraceID(), want.SpanID())
		}
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("attempt %d: kind %v, want client", i, s.SpanKind)
		}
		wantParent := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		if parents[i] != wantParent {
			t.Errorf("attempt %d: receiver's traceparent = %q, want %q", i, parents[i], wantParent)
		}
	}
	if got := attempts[0].Status.Code.String(); got != "Error" {
		t.Errorf("the 503 attempt's status = %s, want Error", got)
	}
}

// Without a tracer provider nothing is traced nor propagated.
func TestNotifierWithoutTracing(t *testing.T) {
	var got string
	rc := &receiver{answer: func(_ int, w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Traceparent")
		w.WriteHeader(200)
	}}
	sendOne(t, NotifierConfig{}, rc, 1)
	if got != "" {
		t.Errorf("receiver's traceparent = %q, want none", got)
	}
}
