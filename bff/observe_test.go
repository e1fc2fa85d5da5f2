package bff

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/session"
)

// panickyIssuer panics when its JWKS is served.
type panickyIssuer struct{}

func (panickyIssuer) JWKS() []byte            { panic("boom") }
func (panickyIssuer) Discovery(string) []byte { return []byte("{}") }

// lockedBuffer is a log sink for one test.
type lockedBuffer struct{ proctest.Buffer }

// lines returns the JSON log lines with the given message.
func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestPanicRecoveredAndLogged: a handler's panic is a 500 in the one
// error shape, logged with its request id, counted and in the access log.
func TestPanicRecoveredAndLogged(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(LogHandler(slog.NewJSONHandler(&logs, nil)))
	timeouts := session.Timeouts{Idle: time.Hour, Absolute: time.Hour}
	store := session.NewMemoryStore(session.MemoryConfig{Timeouts: timeouts})
	t.Cleanup(func() { store.Close() })
	cookies, err := session.NewCookieCodec(session.CookieConfig{Secret: testSecret, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	app := AppConfig{Name: "demo", Issuer: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", Frontend: "http://127.0.0.1:1"}
	app.Defaults()
	srv := ServerConfig{PublicURL: "http://gw.example", AccessLog: true}
	srv.Defaults()
	gw, err := New(Config{Server: srv, Apps: []AppConfig{app}}, Deps{
		Sessions: session.NewManager(store, logger), Cookies: cookies, Transport: http.DefaultTransport,
		Metrics: prometheus.NewRegistry(), Logger: logger, Secret: testSecret, Timeouts: timeouts,
		Issuer: panickyIssuer{},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "server_error" {
		t.Fatalf("body = %q, want the error shape with server_error", rec.Body)
	}
	rid := rec.Header().Get("X-Request-Id")
	if rid == "" || body.RequestID != rid || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("body %q, X-Request-Id %q: want the request id and no panic detail", rec.Body, rid)
	}
	panics := logs.lines(t, "panic")
	if len(panics) != 1 || panics[0]["request_id"] != rid || !strings.Contains(panics[0]["err"].(string), "boom") || panics[0]["stack"] == "" {
		t.Errorf("panic log lines = %v, want one with the request id, err and stack", panics)
	}
	access := logs.lines(t, "request")
	if len(access) != 1 || access[0]["request_id"] != rid || access[0]["status"] != float64(500) || access[0]["route"] != routeWellKnown {
		t.Errorf("access log lines = %v, want one with the request id, status 500, route well_known", access)
	}
	if got := testutil.ToFloat64(gw.metrics.requests.WithLabelValues("", routeWellKnown, "500")); got != 1 {
		t.Errorf("requests{code=500} = %v, want 1", got)
	}
}

// TestRequestIDOnlyFromTrustedProxies: the gateway makes its own request
// id unless a trusted proxy sent a well-formed one.
func TestRequestIDOnlyFromTrustedProxies(t *testing.T) {
	h := newHarness(t, harnessOpts{server: func(s *ServerConfig) { s.TrustedProxies = []string{"10.0.0.0/8"} }})
	tests := []struct {
		name, peer, id string
		kept           bool
	}{
		{"untrusted peer", "192.0.2.1:1234", "abc-123", false},
		{"trusted peer", "10.1.2.3:1234", "abc-123", true},
		{"trusted peer, bad id", "10.1.2.3:1234", "abc 123\x01", false},
		{"trusted peer, long id", "10.1.2.3:1234", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/bff/nothing", nil)
			req.RemoteAddr = tt.peer
			req.Header.Set("X-Request-Id", tt.id)
			rec := httptest.NewRecorder()
			h.gw.Handler().ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-Id")
			if (got == tt.id) != tt.kept || got == "" {
				t.Errorf("X-Request-Id = %q, want kept = %v", got, tt.kept)
			}
		})
	}
}
