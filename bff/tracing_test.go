package bff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// tracedHarness is a harness whose gateway traces into an in-memory
// exporter (spans are exported as they end).
func tracedHarness(t *testing.T, o harnessOpts) (*harness, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	o.tracer = tp
	return newHarness(t, o), exp
}

// spanNamed returns the one ended span called name, waiting for it (a
// server span ends after the response is written).
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	err := proctest.Eventually(5*time.Second, 5*time.Millisecond, func() error {
		found = found[:0]
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				found = append(found, s)
			}
		}
		if len(found) == 0 {
			return fmt.Errorf("no span named %q; spans: %v", name, spanNames(exp))
		}
		return nil // one, or too many: spans only add up
	})
	switch {
	case err != nil:
		t.Fatal(err)
	case len(found) > 1:
		t.Fatalf("%d spans named %q, want 1", len(found), name)
	}
	return found[0]
}

func spanNames(exp *tracetest.InMemoryExporter) []string {
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	return names
}

// wantChild fails unless child's parent is parent.
func wantChild(t *testing.T, parent, child tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.Parent.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %q: parent = %s/%s, want %q (%s/%s)", child.Name, child.Parent.TraceID(), child.Parent.SpanID(),
			parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

func TestTracingLogin(t *testing.T) {
	h, exp := tracedHarness(t, harnessOpts{op: testop.Config{PAR: true}, mutate: withUserinfo})
	h.login("/")

	login := spanNamed(t, exp, "bff.login")
	wantChild(t, spanNamed(t, exp, "GET /bff/login"), login)
	wantChild(t, login, spanNamed(t, exp, "oidc.par"))
	callback := spanNamed(t, exp, "bff.callback")
	server := spanNamed(t, exp, "GET /bff/callback")
	wantChild(t, server, callback)
	if server.SpanKind != trace.SpanKindServer {
		t.Errorf("callback request span kind = %v, want server", server.SpanKind)
	}
	wantChild(t, callback, spanNamed(t, exp, "oidc.code_exchange"))
	wantChild(t, callback, spanNamed(t, exp, "oidc.userinfo"))
	// Nothing secret in any attribute: no code, state, token or cookie.
	for _, s := range exp.GetSpans() {
		for _, a := range s.Attributes {
			v := a.Value.Emit()
			if strings.Contains(v, "code=") || strings.Contains(v, "state=") || strings.Contains(v, "eyJ") {
				t.Errorf("span %q attribute %s = %q", s.Name, a.Key, v)
			}
		}
	}
}

// browserTrace is the traceparent a traced browser sends.
const (
	browserTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	browserParentID = "00f067aa0ba902b7"
	browserTrace    = "00-" + browserTraceID + "-" + browserParentID + "-01"
)

func TestTracingProxyPropagates(t *testing.T) {
	h, exp := tracedHarness(t, harnessOpts{})
	c := h.login("/")
	resp := h.get(c, "/api/x", "X-CSRF", "1", "Traceparent", browserTrace, "Tracestate", "vendor=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("API status = %d, want 200", resp.StatusCode)
	}
	up := lastAPIRequest(t, h)
	proxySpan := spanNamed(t, exp, "proxy demo api")
	if got := proxySpan.SpanContext.TraceID().String(); got != browserTraceID {
		t.Errorf("proxy span trace id = %s, want the browser's %s", got, browserTraceID)
	}
	if got := proxySpan.Parent.SpanID().String(); got != browserParentID || !proxySpan.Parent.IsRemote() {
		t.Errorf("proxy span parent = %s (remote %v), want the browser's %s", got, proxySpan.Parent.IsRemote(), browserParentID)
	}
	want := "00-" + browserTraceID + "-" + proxySpan.SpanContext.SpanID().String() + "-01"
	if got := up.Header.Get("Traceparent"); got != want {
		t.Errorf("upstream traceparent = %q, want %q (parent: the gateway's span)", got, want)
	}
	if got := up.Header.Get("Tracestate"); got != "vendor=1" {
		t.Errorf("upstream tracestate = %q, want vendor=1", got)
	}
}

// Without a tracer provider the gateway adds nothing: the browser's
// headers reach the upstream as they came.
func TestNoTracingPassesTraceparent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	if h.gw.tracer != nil {
		t.Fatal("a gateway without a tracer provider traces")
	}
	c := h.login("/")
	h.get(c, "/api/x", "X-CSRF", "1", "Traceparent", browserTrace)
	if got := lastAPIRequest(t, h).Header.Get("Traceparent"); got != browserTrace {
		t.Errorf("upstream traceparent = %q, want the browser's %q", got, browserTrace)
	}
}

func lastAPIRequest(t *testing.T, h *harness) *http.Request {
	t.Helper()
	select {
	case r := <-h.apiRequests:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the API got no request")
		return nil
	}
}

func TestTracingBackchannel(t *testing.T) {
	h, exp := tracedHarness(t, harnessOpts{})
	h.login("/")
	if resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{})); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout = %d, want 200", resp.StatusCode)
	}
	bc := spanNamed(t, exp, "logout.backchannel")
	wantChild(t, spanNamed(t, exp, "POST /bff/backchannel-logout"), bc)
	wantChild(t, bc, spanNamed(t, exp, "logout.verify_token"))
}

func TestTracingRPInitiated(t *testing.T) {
	h, exp := tracedHarness(t, harnessOpts{})
	c := h.login("/")
	h.get(c, "/bff/logout?sid="+url.QueryEscape(h.gw.logout.Handle(h.sessionOf(c))))
	wantChild(t, spanNamed(t, exp, "GET /bff/logout"), spanNamed(t, exp, "logout.rp_initiated"))
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// accessLine waits for the access-log line of path.
func accessLine(t *testing.T, logs *syncBuffer, path string) map[string]any {
	t.Helper()
	var line map[string]any
	if err := proctest.Eventually(5*time.Second, 5*time.Millisecond, func() error {
		for _, l := range logs.lines() {
			if l["msg"] == "request" && l["path"] == path {
				line = l
				return nil
			}
		}
		return fmt.Errorf("no access-log line for %s", path)
	}); err != nil {
		t.Fatal(err)
	}
	return line
}

func TestLogLinesCarryTraceID(t *testing.T) {
	accessLog := func(s *ServerConfig) { s.AccessLog = true }
	t.Run("traced", func(t *testing.T) {
		logs := &syncBuffer{}
		h, exp := tracedHarness(t, harnessOpts{logs: logs, server: accessLog})
		c := h.login("/")
		h.get(c, "/api/traced", "X-CSRF", "1", "Traceparent", browserTrace)
		line := accessLine(t, logs, "/api/traced")
		if got := line["trace_id"]; got != browserTraceID {
			t.Errorf("trace_id = %v, want %s", got, browserTraceID)
		}
		if got := spanNamed(t, exp, "proxy demo api").SpanContext.TraceID().String(); got != browserTraceID {
			t.Errorf("span trace id = %s, want %s", got, browserTraceID)
		}
	})
	t.Run("not traced", func(t *testing.T) {
		logs := &syncBuffer{}
		h := newHarness(t, harnessOpts{logs: logs, server: accessLog})
		c := h.login("/")
		h.get(c, "/api/plain", "X-CSRF", "1", "Traceparent", browserTrace)
		if got, ok := accessLine(t, logs, "/api/plain")["trace_id"]; ok {
			t.Errorf("trace_id = %v without tracing, want none", got)
		}
	})
}

func TestTracingOtherLogoutPaths(t *testing.T) {
	t.Run("front-channel", func(t *testing.T) {
		h, exp := tracedHarness(t, harnessOpts{})
		c := h.login("/")
		h.get(c, "/bff/frontchannel-logout?iss="+url.QueryEscape(h.op.URL)+"&sid="+url.QueryEscape(h.op.LastSID()), "Sec-Fetch-Dest", "iframe")
		wantChild(t, spanNamed(t, exp, "GET /bff/frontchannel-logout"), spanNamed(t, exp, "logout.frontchannel"))
		if h.signedIn(c) {
			t.Error("the session survived the front-channel logout")
		}
	})
	t.Run("user-ended", func(t *testing.T) {
		h, exp := tracedHarness(t, harnessOpts{})
		c := h.login("/")
		handle := h.listSessions(c).Sessions[0].Handle
		if resp := h.endSession(c, "application/json", handleJSON(handle), "X-CSRF", "1"); resp.StatusCode >= 300 {
			t.Fatalf("end = %d", resp.StatusCode)
		}
		wantChild(t, spanNamed(t, exp, "POST /bff/sessions/end"), spanNamed(t, exp, "bff.sessions_end"))
	})
	t.Run("admin", func(t *testing.T) {
		h, exp := tracedHarness(t, harnessOpts{server: func(c *ServerConfig) {
			c.AdminListen = "127.0.0.1:0"
			c.AdminToken = adminToken
		}})
		admin := httptest.NewServer(h.gw.AdminHandler())
		t.Cleanup(admin.Close)
		c := h.login("/")
		if resp, out := adminDo(t, http.MethodPost, admin.URL+"/admin/sessions/revoke", adminToken, `{"app":"demo","sub":"alice"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke = %d %v", resp.StatusCode, out)
		}
		wantChild(t, spanNamed(t, exp, "POST /admin/sessions/revoke"), spanNamed(t, exp, "logout.admin"))
		if h.signedIn(c) {
			t.Error("the session survived the admin revocation")
		}
	})
}

func TestTracingRefresh(t *testing.T) {
	h, exp := tracedHarness(t, harnessOpts{})
	c := h.login("/")
	s := h.sessionOf(c)
	s.TokenExpiry = time.Now().Add(5 * time.Second) // inside the refresh leeway
	if _, _, err := h.mgr.ReplaceTokens(t.Context(), s.ID, s.RefreshToken,
		session.Tokens{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: s.TokenExpiry}); err != nil {
		t.Fatal(err)
	}
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	wantChild(t, spanNamed(t, exp, "proxy demo api"), spanNamed(t, exp, "oidc.refresh"))
}
