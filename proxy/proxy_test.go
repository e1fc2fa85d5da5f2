package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{Name: "api", Target: mustURL(t, "http://127.0.0.1:4000"), IsGatewayCookie: isGatewayCookie, WriteError: writeTestError}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "token none", edit: func(c *Config) { c.Token = TokenNone }},
		{name: "no name", edit: func(c *Config) { c.Name = "" }, wantErr: "name: must be set"},
		{name: "no target", edit: func(c *Config) { c.Target = nil }, wantErr: "upstream: must be set"},
		{name: "relative target", edit: func(c *Config) { c.Target = mustURL(t, "/api") }, wantErr: "upstream: must be an absolute"},
		{name: "target query", edit: func(c *Config) { c.Target = mustURL(t, "http://h/?a=1") }, wantErr: "upstream: must not contain"},
		{name: "bad token", edit: func(c *Config) { c.Token = "banana" }, wantErr: "token: must be"},
		{name: "client token without source", edit: func(c *Config) { c.Token = TokenClient }, wantErr: "ClientTokens: must be set"},
		{name: "bad prefix", edit: func(c *Config) { c.StripPrefix = "api" }, wantErr: "strip_prefix: must start with /"},
		{name: "no cookie func", edit: func(c *Config) { c.IsGatewayCookie = nil }, wantErr: "IsGatewayCookie: must be set"},
		{name: "no error writer", edit: func(c *Config) { c.WriteError = nil }, wantErr: "WriteError: must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRequiresCollaborators(t *testing.T) {
	cfg := Config{Name: "api", Target: mustURL(t, "http://127.0.0.1:4000"), IsGatewayCookie: isGatewayCookie, WriteError: writeTestError}
	_, err := New(cfg, nil, nil, nil, nil)
	if err == nil {
		t.Fatal("New() with nil collaborators: error = nil")
	}
	for _, want := range []string{"transport", "token source", "usage recorder"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() error = %q, want mention of %q", err, want)
		}
	}
}

func TestBearerReplacesAuthorization(t *testing.T) {
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)

	req := httptest.NewRequest(http.MethodGet, "http://app.example/api/items?x=1", nil)
	req.Header.Set("Authorization", "Bearer forged")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	got := decodeSeen(t, serve(p, req, validSession()))

	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer at-1" {
		t.Errorf("upstream Authorization = %q, want [Bearer at-1]", a)
	}
	if f := got.Header.Get("Forwarded"); f != "" {
		t.Errorf("upstream Forwarded = %q, want none", f)
	}
	if got.Path != "/api/items" || got.Query != "x=1" {
		t.Errorf("upstream path = %q?%q, want /api/items?x=1", got.Path, got.Query)
	}
	if want := strings.TrimPrefix(up.URL, "http://"); got.Host != want {
		t.Errorf("upstream Host = %q, want %q", got.Host, want)
	}
}

func TestTokenNone(t *testing.T) {
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, nil, nil, func(c *Config) { c.Token = TokenNone })

	req := httptest.NewRequest(http.MethodGet, "http://app.example/index.html", nil)
	req.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
	got := decodeSeen(t, serve(p, req, nil))
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("upstream Authorization = %q, want none", a)
	}
}

func TestGatewayCookiesStripped(t *testing.T) {
	tests := []struct {
		name    string
		cookies []string // Cookie header lines sent
		want    []string // Cookie header lines the upstream sees
	}{
		{name: "only gateway", cookies: []string{"bffgate=abc"}, want: nil},
		{name: "mixed", cookies: []string{"theme=dark; bffgate=abc; lang=en"}, want: []string{"theme=dark; lang=en"}},
		{name: "prefixed gateway names", cookies: []string{"__Host-bffgate-csrf=1;a=b"}, want: []string{"a=b"}},
		{name: "several headers", cookies: []string{"a=1; bffgate=x", "b=2"}, want: []string{"a=1; b=2"}},
		{name: "no gateway cookie untouched", cookies: []string{"a=1;b=2"}, want: []string{"a=1;b=2"}},
		{name: "none", cookies: nil, want: nil},
	}
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) { c.Cookies.All = true })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := upstreamCookies(t, p, tt.cookies)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("upstream Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

// upstreamCookies sends a request with these Cookie headers through p and
// returns the Cookie headers the upstream (an echo upstream) saw.
func upstreamCookies(t *testing.T, p *Proxy, cookies []string) []string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil)
	for _, c := range cookies {
		req.Header.Add("Cookie", c)
	}
	return decodeSeen(t, serve(p, req, validSession())).Header.Values("Cookie")
}

// TestCookieAllowList: by default the upstream gets no cookies; with
// Names only those (never a gateway cookie, even if named).
func TestCookieAllowList(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		cookies []string
		want    []string
	}{
		{name: "default none", cookies: []string{"theme=dark; _csrf=idp"}, want: nil},
		{name: "allowed", names: []string{"theme"}, cookies: []string{"theme=dark; _csrf=idp", "theme2=x"}, want: []string{"theme=dark"}},
		{name: "all allowed untouched", names: []string{"a", "b"}, cookies: []string{"a=1;b=2"}, want: []string{"a=1;b=2"}},
		{name: "gateway never", names: []string{"bffgate", "a"}, cookies: []string{"bffgate=x; a=1"}, want: []string{"a=1"}},
		{name: "none left", names: []string{"a"}, cookies: []string{"b=1"}, want: nil},
	}
	up := newEchoUpstream(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) { c.Cookies.Names = tt.names })
			got := upstreamCookies(t, p, tt.cookies)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("upstream Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGatewaySetCookieDropped(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("Set-Cookie", "bffgate=fixated; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
	}))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	rec := serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), validSession())
	if got := rec.Header().Values("Set-Cookie"); len(got) != 1 || got[0] != "theme=dark; Path=/" {
		t.Errorf("Set-Cookie = %q, want only the theme cookie", got)
	}
}

func TestNoSession(t *testing.T) {
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	rec := serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), nil)
	wantJSONError(t, rec, http.StatusUnauthorized, "unauthorized")
}

func TestTokenSourceErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{name: "session ended", err: fmt.Errorf("refresh: %w", ErrSessionEnded), wantStatus: http.StatusUnauthorized, wantCode: "unauthorized"},
		{name: "other", err: fmt.Errorf("token endpoint at http://10.0.0.1:9000: %w", errBoom), wantStatus: http.StatusBadGateway, wantCode: "bad_gateway"},
	}
	up := newEchoUpstream(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, up.URL, staticTokens{err: tt.err}, nil, nil)
			rec := serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), validSession())
			wantJSONError(t, rec, tt.wantStatus, tt.wantCode)
			if strings.Contains(rec.Body.String(), "10.0.0.1") {
				t.Errorf("body %q reveals the error detail", rec.Body)
			}
		})
	}
}

func TestXForwarded(t *testing.T) {
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	req := httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil)
	req.RemoteAddr = "192.0.2.7:51234"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	got := decodeSeen(t, serve(p, req, validSession())).Header
	for key, want := range map[string]string{
		"X-Forwarded-For":   "192.0.2.7",
		"X-Forwarded-Host":  "app.example",
		"X-Forwarded-Proto": "http",
	} {
		if v := got.Values(key); len(v) != 1 || v[0] != want {
			t.Errorf("upstream %s = %q, want [%s]", key, v, want)
		}
	}
}

func TestStripPrefix(t *testing.T) {
	tests := []struct {
		prefix, target, path, want string
	}{
		{prefix: "", target: "/", path: "/api/users", want: "/api/users"},
		{prefix: "/api", target: "/", path: "/api/users", want: "/users"},
		{prefix: "/api/", target: "/v1", path: "/api/users", want: "/v1/users"},
		{prefix: "/api", target: "", path: "/api", want: "/"},
		{prefix: "/api", target: "", path: "/other/x", want: "/other/x"},
	}
	up := newEchoUpstream(t)
	for _, tt := range tests {
		t.Run(tt.prefix+tt.path, func(t *testing.T) {
			p := newTestProxy(t, up.URL+tt.target, staticTokens{token: "at-1"}, nil, func(c *Config) { c.StripPrefix = tt.prefix })
			got := decodeSeen(t, serve(p, httptest.NewRequest(http.MethodGet, "http://app.example"+tt.path+"?q=1", nil), validSession()))
			if got.Path != tt.want || got.Query != "q=1" {
				t.Errorf("upstream got %s?%s, want %s?q=1", got.Path, got.Query, tt.want)
			}
		})
	}
}

func TestStripPrefixEscapedPath(t *testing.T) {
	var gotRaw string
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { gotRaw = r.RequestURI }))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) { c.StripPrefix = "/api" })
	serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/files/a%2Fb", nil), validSession())
	if gotRaw != "/files/a%2Fb" {
		t.Errorf("upstream RequestURI = %q, want /files/a%%2Fb", gotRaw)
	}
}

func TestHopByHopHeadersStripped(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Connection", "X-Upstream-Hop")
		w.Header().Set("X-Upstream-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
	}))
	t.Cleanup(up.Close)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, nil)
	req := httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil)
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic eA==")
	rec := serve(p, req, validSession())
	for _, h := range []string{"X-Client-Hop", "Proxy-Authorization"} {
		if v := got.Get(h); v != "" {
			t.Errorf("upstream saw %s = %q, want none", h, v)
		}
	}
	for _, h := range []string{"X-Upstream-Hop", "Keep-Alive", "Connection"} {
		if v := rec.Header().Get(h); v != "" {
			t.Errorf("client got %s = %q, want none", h, v)
		}
	}
}

func TestUsageRecordedOnce(t *testing.T) {
	up := newEchoUpstream(t)
	used := &recorder{}
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, used, nil)
	s := validSession()
	for range 3 {
		serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), s)
	}
	if got := used.count(s.ID, "api"); got != 1 {
		t.Errorf("MarkUpstream calls = %d, want 1", got)
	}
	if !s.UsedUpstream("api") {
		t.Errorf("session Upstreams = %q, want [api]", s.Upstreams)
	}
}

func TestUsageRecorderErrorDoesNotFailRequest(t *testing.T) {
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, &recorder{err: errBoom}, nil)
	decodeSeen(t, serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), validSession()))
}

// The proxy with the real Refresher: an expired token is refreshed once
// for 20 concurrent requests, each carrying its own copy of the session.
func TestProxyRefreshOnceUnderConcurrency(t *testing.T) {
	te := newTokenEndpoint(t)
	expired := validSession()
	expired.TokenExpiry = time.Now().Add(-time.Minute)
	st := newSessions(t, expired.Clone())
	en := st
	up := newEchoUpstream(t)
	p := newTestProxy(t, up.URL, te.refresher(st), nil, nil)
	const n = 20
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			recs[i] = serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), expired.Clone())
		})
	}
	wg.Wait()

	if got := te.hits.Load(); got != 1 {
		t.Errorf("token endpoint hits = %d, want 1", got)
	}
	for i, rec := range recs { // decodeSeen may t.Fatal: here, not in the workers
		if a := decodeSeen(t, rec).Header.Get("Authorization"); a != "Bearer at-new" {
			t.Errorf("request %d: upstream Authorization = %q, want Bearer at-new", i, a)
		}
	}
	updates, saved := st.saved(expired.ID)
	if updates != 1 || saved.AccessToken != "at-new" || saved.RefreshToken != "rt-1" {
		t.Errorf("store: %d updates, last %+v; want 1 with at-new and the kept rt-1", updates, saved)
	}
	if got := en.calls(); len(got) != 0 {
		t.Errorf("sessions ended: %v, want none", got)
	}
}

func TestProxyRefreshFailureEndsSession(t *testing.T) {
	tests := []struct {
		name     string
		session  func() *session.Session
		wantHits int32
	}{
		{
			name: "invalid_grant",
			session: func() *session.Session {
				s := validSession()
				s.TokenExpiry = time.Now().Add(-time.Minute)
				return s
			},
			wantHits: 1,
		},
		{
			name: "expired without refresh token",
			session: func() *session.Session {
				s := validSession()
				s.TokenExpiry, s.RefreshToken = time.Now().Add(-time.Minute), ""
				return s
			},
			wantHits: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTokenEndpoint(t)
			te.handle = func(w http.ResponseWriter, _ string) {
				writeTokenJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			}
			en := newSessions(t, tt.session())
			up := newEchoUpstream(t)
			p := newTestProxy(t, up.URL, te.refresher(en), nil, nil)

			rec := serve(p, httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil), tt.session())
			wantJSONError(t, rec, http.StatusUnauthorized, "unauthorized")
			if got := en.calls(); len(got) != 1 || got[0] != (endCall{"s1", session.CauseRefreshFailed}) {
				t.Errorf("End calls = %v, want [{s1 refresh_failed}]", got)
			}
			if got := te.hits.Load(); got != tt.wantHits {
				t.Errorf("token endpoint hits = %d, want %d", got, tt.wantHits)
			}
		})
	}
}
