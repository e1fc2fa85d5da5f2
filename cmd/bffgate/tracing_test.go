package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

func TestTracingFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "nothing set", env: nil},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "traces endpoint, grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{name: "exporter otlp, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := newTracing(t.Context(), env(tt.env), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.shutdown(context.Background())
			if got := tr.tp() != nil; got != tt.on {
				t.Errorf("tracing on = %v, want %v", got, tt.on)
			}
		})
	}
}

// Redis commands made under a traced operation are spans, without their
// arguments; those of background loops (no span in the context) are not.
func TestRedisCommandSpans(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	opts, err := redis.ParseURL(redisSrv.URL(11))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := traceRedis(rdb, tp); err != nil {
		t.Fatal(err)
	}

	if err := rdb.Set(context.Background(), "untraced", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if err := rdb.Set(ctx, "traced", "secret-token-value", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var cmds []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name != "request" {
			cmds = append(cmds, s)
		}
	}
	if len(cmds) != 1 || cmds[0].Name != "set" {
		t.Fatalf("command spans = %v, want one: set under the request", names(cmds))
	}
	if cmds[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("set's parent = %s, want the request's span", cmds[0].Parent.SpanID())
	}
	for _, a := range cmds[0].Attributes {
		if strings.Contains(a.Value.Emit(), "secret-token-value") {
			t.Errorf("attribute %s holds the command's value", a.Key)
		}
	}
}

func names(spans []tracetest.SpanStub) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// otlpReceiver is an OTLP/HTTP traces endpoint: it decodes every export
// request and keeps the spans with their service.name.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service, name   string
	traceID, spanID string
	parentID        string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, receivedSpan{service: service, name: s.Name,
					traceID: fmt.Sprintf("%x", s.TraceId), spanID: fmt.Sprintf("%x", s.SpanId), parentID: fmt.Sprintf("%x", s.ParentSpanId)})
			}
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Write(b)
}

func (o *otlpReceiver) named(name string) []receivedSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []receivedSpan
	for _, s := range o.spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

func (o *otlpReceiver) names() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, s := range o.spans {
		out = append(out, s.name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestTracingBinary runs the built binary with OTEL_EXPORTER_OTLP_ENDPOINT
// naming an OTLP/HTTP receiver and the Redis store: a sign-in, an API call
// that continues the browser's trace, and a back-channel logout that
// reaches a downstream app. The spans arrive with service.name bffgate,
// the API's traceparent names the gateway's span, the log lines carry
// trace_id, and the spans still buffered at SIGTERM are flushed.
func TestTracingBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	bin := filepath.Join(t.TempDir(), "bffgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	receiver := &otlpReceiver{}
	otlp := httptest.NewServer(receiver)
	defer otlp.Close()

	upstream := make(chan http.Header, 10)
	downstream := make(chan http.Header, 10)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logout" {
			downstream <- r.Header.Clone()
			return
		}
		upstream <- r.Header.Clone()
		io.WriteString(w, `{"ok":true}`)
	}))
	defer api.Close()

	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	op.SetRedirectURL(public + "/bff/callback")
	path := testConfig{
		op: op, listen: listen, admin: admin,
		server:  "access_log = true\nrate_limits = { login = { off = true }, backchannel = { off = true } }",
		session: fmt.Sprintf("store = \"redis\"\nredis_url = %q", redisSrv.URL(12)),
		app: fmt.Sprintf(`  [[apps.apis]]
  path = "/api/"
  upstream = %q
  [[apps.downstream]]
  backchannel_logout_uri = "%s/logout"
  audience = "demo-api"`, api.URL, api.URL),
		tables: fmt.Sprintf("[signing]\nkey_file = %q\n[notifier]\nbase_delay = \"10ms\"", signingKeyFile(t)),
	}.write(t)

	var stderr proctest.Buffer
	cmd := exec.Command(bin, "-config", path)
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlp.URL,
		"OTEL_BSP_SCHEDULE_DELAY=60000", // nothing before the shutdown flush
		"OTEL_SERVICE_NAME=",
	)
	cmd.Stderr = &stderr
	proc, err := proctest.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", proctest.Tail(stderr.String(), 30))
		}
	})
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)

	browser := signIn(t, public)
	req, _ := http.NewRequest(http.MethodGet, public+"/api/hello", nil)
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Traceparent", "00-"+browserTraceID+"-00f067aa0ba902b7-01")
	resp, err := browser.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API call: %v %v", resp, err)
	}
	resp.Body.Close()
	var apiHeader http.Header
	select {
	case apiHeader = <-upstream:
	case <-time.After(5 * time.Second):
		t.Fatal("the API got no request")
	}

	lt := op.Sign(op.LogoutToken(nil), testop.SignOpts{})
	resp, err = http.Post(public+"/bff/backchannel-logout", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"logout_token": {lt}}.Encode()))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel: %v %v", resp, err)
	}
	resp.Body.Close()
	var downHeader http.Header
	select {
	case downHeader = <-downstream:
	case <-time.After(5 * time.Second):
		t.Fatal("the downstream app received no logout token")
	}

	if got := receiver.names(); len(got) != 0 {
		t.Errorf("spans exported before the shutdown with a 60 s batch delay: %v", got)
	}
	proc.Stop() // SIGTERM: the shutdown flushes the spans
	if ok, err := proc.Exited(); !ok || err != nil {
		t.Fatalf("the gateway did not stop cleanly: %v\n%s", err, proctest.Tail(stderr.String(), 20))
	}

	for _, name := range []string{"GET /bff/login", "bff.login", "bff.callback", "oidc.code_exchange", "proxy demo api",
		"POST /bff/backchannel-logout", "logout.backchannel", "logout.verify_token", "upstream.notify"} {
		if len(receiver.named(name)) == 0 {
			t.Errorf("no span %q arrived; got %v", name, receiver.names())
		}
	}
	receiver.mu.Lock()
	redisSpans := 0
	for _, s := range receiver.spans {
		if s.service != "bffgate" {
			t.Errorf("span %q: service.name %q, want bffgate", s.name, s.service)
		}
		if s.name == "evalsha" || s.name == "hset" || s.name == "hgetall" || s.name == "pipeline" || strings.HasPrefix(s.name, "pipeline") {
			redisSpans++
		}
	}
	receiver.mu.Unlock()
	if redisSpans == 0 {
		t.Errorf("no Redis command span arrived; got %v", receiver.names())
	}

	// The API's traceparent: the browser's trace, the gateway's span.
	proxySpans := receiver.named("proxy demo api")
	if len(proxySpans) == 1 {
		want := "00-" + browserTraceID + "-" + proxySpans[0].spanID + "-01"
		if got := apiHeader.Get("Traceparent"); got != want {
			t.Errorf("API traceparent = %q, want %q", got, want)
		}
	}
	// The downstream delivery continues the back-channel logout's trace.
	if bc, nt := receiver.named("logout.backchannel"), receiver.named("upstream.notify"); len(bc) == 1 && len(nt) >= 1 {
		if nt[0].traceID != bc[0].traceID {
			t.Errorf("upstream.notify trace %s, want the back-channel logout's %s", nt[0].traceID, bc[0].traceID)
		}
		if got := downHeader.Get("Traceparent"); !strings.Contains(got, bc[0].traceID) {
			t.Errorf("downstream traceparent = %q, want one in trace %s", got, bc[0].traceID)
		}
	}
	if !strings.Contains(stderr.String(), `"trace_id":"`+browserTraceID+`"`) {
		t.Errorf("no log line carries the browser's trace_id:\n%s", proctest.Tail(stderr.String(), 20))
	}
}

const browserTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
