package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// receiver is a downstream app's back-channel logout endpoint. It records
// every request and answers with answer(attempt index, ...).
type receiver struct {
	answer func(i int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []received
}

type received struct {
	at                                       time.Time
	method, contentType, cacheControl, token string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	rc.mu.Lock()
	i := len(rc.reqs)
	rc.reqs = append(rc.reqs, received{
		at:           time.Now(),
		method:       r.Method,
		contentType:  r.Header.Get("Content-Type"),
		cacheControl: r.Header.Get("Cache-Control"),
		token:        r.PostForm.Get("logout_token"),
	})
	rc.mu.Unlock()
	rc.answer(i, w, r)
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// answers replies with codes in turn, repeating the last one.
func answers(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(i int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(i, len(codes)-1)])
	}
}

// handlerTransport calls a handler in memory instead of over a socket, so
// notifier timing can run in a synctest bubble (whose clock does not
// advance while a goroutine waits on the network).
type handlerTransport struct{ h http.Handler }

func (tr handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	tr.h.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// metricValue sums the counters (or histogram sample counts) called name
// whose labels include labels.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	families, err := reg.Gather()
	if err != nil {
		panic("gather metrics: " + err.Error()) // only on inconsistent registrations
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// testToken is a real logout token with jti "jti-1".
func testToken(t *testing.T) string {
	t.Helper()
	s, err := NewSigner(SignerConfig{Issuer: "https://gw.example.com", KeyFile: writeKeyPEM(t, testECKey(), "PRIVATE KEY")}, nil)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	tok, err := s.LogoutToken(LogoutClaims{Audience: "demo", SID: "sid-1", JTI: "jti-1"})
	if err != nil {
		t.Fatalf("LogoutToken: %v", err)
	}
	return tok
}

func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "unparsable token"
	}
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
	return c.JTI
}

type testNotifier struct {
	*Notifier
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

// sendOne delivers one notification through a notifier with cfg to rc,
// shuts the notifier down, and returns it and the want requests rc
// received.
func sendOne(t *testing.T, cfg NotifierConfig, rc *receiver, want int) (testNotifier, []received) {
	t.Helper()
	nt := newTestNotifier(cfg, &http.Client{Transport: handlerTransport{rc}})
	nt.Start()
	nt.Enqueue(context.Background(), notification("http://app.test/logout", "token"))
	if err := nt.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	reqs := rc.received()
	if len(reqs) != want {
		t.Fatalf("receiver got %d requests, want %d", len(reqs), want)
	}
	return nt, reqs
}

func newTestNotifier(cfg NotifierConfig, client *http.Client) testNotifier {
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{} // slog handlers serialise writes
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return testNotifier{NewNotifier(cfg, client, reg, logger), reg, logs}
}

func (tn testNotifier) count(name string, labels map[string]string) float64 {
	return metricValue(tn.reg, name, labels)
}

func notification(url, token string) Notification {
	return Notification{App: "demo", Target: "demo/0", URL: url, Token: token, JTI: "jti-1"}
}

func TestNotifierDelivery(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(int, http.ResponseWriter, *http.Request)
		wantAttempts int
		wantResult   string
	}{
		{name: "200", answer: answers(200), wantAttempts: 1, wantResult: "delivered"},
		{name: "204", answer: answers(204), wantAttempts: 1, wantResult: "delivered"},
		{name: "503 twice then 200", answer: answers(503, 503, 200), wantAttempts: 3, wantResult: "delivered"},
		{name: "500 then 200", answer: answers(500, 200), wantAttempts: 2, wantResult: "delivered"},
		{name: "429 then 200", answer: answers(429, 200), wantAttempts: 2, wantResult: "delivered"},
		{name: "400", answer: answers(400), wantAttempts: 1, wantResult: "failed"},
		{name: "404", answer: answers(404), wantAttempts: 1, wantResult: "failed"},
		{name: "redirect not followed", answer: func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantAttempts: 1, wantResult: "failed"},
		{name: "503 every time", answer: answers(503), wantAttempts: 4, wantResult: "failed"},
	}
	token := testToken(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{answer: tt.answer}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			nt := newTestNotifier(NotifierConfig{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}, srv.Client())
			nt.Start()

			if !nt.Enqueue(context.Background(), notification(srv.URL+"/logout", token)) {
				t.Fatal("Enqueue = false, want true")
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := nt.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v, want nil", err)
			}

			reqs := rc.received()
			if got := len(reqs); got != tt.wantAttempts {
				t.Errorf("receiver got %d requests, want %d", got, tt.wantAttempts)
			}
			for i, r := range reqs {
				if r.method != "POST" || r.contentType != "application/x-www-form-urlencoded" || r.cacheControl != "no-store" {
					t.Errorf("request %d = %s, Content-Type %q, Cache-Control %q, want POST, form, no-store",
						i, r.method, r.contentType, r.cacheControl)
				}
				if r.token != token || jtiOf(t, r.token) != "jti-1" {
					t.Errorf("request %d: logout_token with jti %q, want the same token (jti-1) every attempt", i, jtiOf(t, r.token))
				}
			}
			labels := map[string]string{"app": "demo", "target": "demo/0"}
			if got := nt.count("bffgate_downstream_logout_attempts_total", labels); got != float64(tt.wantAttempts) {
				t.Errorf("attempts_total = %v, want %d", got, tt.wantAttempts)
			}
			for _, result := range []string{"delivered", "failed", "dropped"} {
				want := 0.0
				if result == tt.wantResult {
					want = 1
				}
				l := map[string]string{"app": "demo", "target": "demo/0", "result": result}
				if got := nt.count("bffgate_downstream_logout_total", l); got != want {
					t.Errorf("logout_total{result=%q} = %v, want %v", result, got, want)
				}
			}
			if got := nt.count("bffgate_downstream_logout_duration_seconds", labels); got != 1 {
				t.Errorf("duration_seconds sample count = %v, want 1", got)
			}
			if strings.Contains(nt.logs.String(), token) {
				t.Error("logs contain the logout token")
			}
		})
	}
}

func TestNotifierRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter func(now time.Time) string
		wantGap    time.Duration
	}{
		{name: "429 seconds", status: 429, retryAfter: func(time.Time) string { return "3" }, wantGap: 3 * time.Second},
		{name: "503 seconds", status: 503, retryAfter: func(time.Time) string { return "2" }, wantGap: 2 * time.Second},
		{name: "HTTP date", status: 429, retryAfter: func(now time.Time) string {
			return now.Add(5 * time.Second).UTC().Format(http.TimeFormat)
		}, wantGap: 5 * time.Second},
		{name: "capped by MaxDelay", status: 503, retryAfter: func(time.Time) string { return "3600" }, wantGap: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := &receiver{answer: func(i int, w http.ResponseWriter, _ *http.Request) {
					if i == 0 {
						w.Header().Set("Retry-After", tt.retryAfter(time.Now()))
						w.WriteHeader(tt.status)
						return
					}
					w.WriteHeader(200)
				}}
				_, reqs := sendOne(t, NotifierConfig{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Second}, rc, 2)
				if got := reqs[1].at.Sub(reqs[0].at); got != tt.wantGap {
					t.Errorf("second attempt after %v, want %v", got, tt.wantGap)
				}
			})
		})
	}
}

func TestNotifierAttemptTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{answer: func(i int, w http.ResponseWriter, r *http.Request) {
			if i == 0 {
				<-r.Context().Done() // hang until the attempt times out
				return
			}
			w.WriteHeader(200)
		}}
		nt, reqs := sendOne(t, NotifierConfig{Timeout: 2 * time.Second, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, rc, 2)
		if gap := reqs[1].at.Sub(reqs[0].at); gap < 2*time.Second || gap > 2*time.Second+2*time.Millisecond {
			t.Errorf("second attempt after %v, want 2s timeout plus at most 2ms backoff", gap)
		}
		if got := nt.count("bffgate_downstream_logout_total", map[string]string{"result": "delivered"}); got != 1 {
			t.Errorf("delivered = %v, want 1", got)
		}
	})
}

func TestNotifierQueueFull(t *testing.T) {
	// In a bubble, an Enqueue that blocked forever would fail the test as
	// a deadlock instead of hanging it.
	synctest.Test(t, func(t *testing.T) {
		nt := newTestNotifier(NotifierConfig{QueueSize: 2}, nil) // not started: nothing drains
		n := notification("http://app.test/logout", "secret-token")
		var got []bool
		for range 3 {
			got = append(got, nt.Enqueue(context.Background(), n))
		}
		if want := []bool{true, true, false}; !equalBools(got, want) {
			t.Errorf("Enqueue results = %v, want %v", got, want)
		}
		if got := nt.count("bffgate_downstream_logout_dropped_total", map[string]string{"app": "demo"}); got != 1 {
			t.Errorf("dropped_total{app=demo} = %v, want 1", got)
		}
		if got := nt.count("bffgate_downstream_logout_total", map[string]string{"app": "demo", "target": "demo/0", "result": "dropped"}); got != 1 {
			t.Errorf("logout_total{result=dropped} = %v, want 1", got)
		}
		logs := nt.logs.String()
		if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "app=demo") || !strings.Contains(logs, "target=demo/0") {
			t.Errorf("logs = %q, want an ERROR with app and target", logs)
		}
		if strings.Contains(logs, "secret-token") {
			t.Error("logs contain the logout token")
		}
	})
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNotifierShutdownDrains(t *testing.T) {
	rc := &receiver{answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(200)
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	nt := newTestNotifier(NotifierConfig{Concurrency: 2}, srv.Client())
	const n = 20
	for range n { // queued before Start: the workers pick them up
		nt.Enqueue(context.Background(), notification(srv.URL, "token"))
	}
	nt.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := nt.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if got := len(rc.received()); got != n {
		t.Errorf("receiver got %d requests, want %d", got, n)
	}
	if got := nt.count("bffgate_downstream_logout_total", map[string]string{"result": "delivered"}); got != n {
		t.Errorf("delivered = %v, want %d", got, n)
	}
	if nt.Enqueue(context.Background(), notification(srv.URL, "token")) {
		t.Error("Enqueue after Shutdown = true, want false")
	}
}

func TestNotifierShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &receiver{answer: func(_ int, _ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // never answers
		}}
		cfg := NotifierConfig{Concurrency: 1, Timeout: time.Minute}
		nt := newTestNotifier(cfg, &http.Client{Transport: handlerTransport{rc}})
		for range 3 {
			nt.Enqueue(context.Background(), notification("http://app.test/logout", "token"))
		}
		nt.Start()
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()

		err := nt.Shutdown(ctx)
		if err == nil || !strings.Contains(err.Error(), "3 logout notifications undelivered") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want 3 undelivered and a deadline error", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("Shutdown took %v, want its 1s deadline", got)
		}
		if got := len(rc.received()); got != 1 {
			t.Errorf("receiver got %d requests, want 1 (one in flight, two never started)", got)
		}
		if got := nt.count("bffgate_downstream_logout_dropped_total", map[string]string{"app": "demo"}); got != 3 {
			t.Errorf("dropped_total = %v, want 3", got)
		}
		if logs := nt.logs.String(); !strings.Contains(logs, "undelivered=3") {
			t.Errorf("logs = %q, want undelivered=3", logs)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{in: "", wantOK: false},
		{in: "7", want: 7 * time.Second, wantOK: true},
		{in: "-3", want: 0, wantOK: true},
		{in: now.Add(time.Minute).Format(http.TimeFormat), want: time.Minute, wantOK: true},
		{in: now.Add(-time.Minute).Format(http.TimeFormat), want: 0, wantOK: true},
		{in: "soon", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNotifierConfigValidate(t *testing.T) {
	if err := (NotifierConfig{}).Validate(); err != nil {
		t.Errorf("zero config: Validate() = %v, want nil", err)
	}
	bad := NotifierConfig{Timeout: -1, Concurrency: -1, QueueSize: -1, MaxAttempts: -1, BaseDelay: -1, MaxDelay: -1}
	err := bad.Validate()
	for _, key := range []string{"timeout: ", "concurrency: ", "queue_size: ", "max_attempts: ", "base_delay: ", "max_delay: "} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want a message for %q", err, key)
		}
	}
	if err := (NotifierConfig{BaseDelay: time.Minute, MaxDelay: time.Second}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "base_delay: must not exceed max_delay") {
		t.Errorf("base > max: Validate() = %v, want base_delay error", err)
	}
}
