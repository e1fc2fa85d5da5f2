package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// fakeClock is a settable ClientTokensConfig.Now.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	now := time.Now()
	c.t.Store(&now)
	return c
}

func (c *fakeClock) Now() time.Time { return *c.t.Load() }
func (c *fakeClock) Advance(d time.Duration) {
	n := c.Now().Add(d)
	c.t.Store(&n)
}

// newClientTokens returns the client tokens of op's client; edit adjusts
// the config.
func newClientTokens(t *testing.T, op *testop.OP, edit func(*ClientTokensConfig)) *ClientTokens {
	t.Helper()
	cfg := ClientTokensConfig{Issuer: op.URL, ClientID: op.ClientID(), Timeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	ct := NewClientTokens(cfg, nil)
	ct.SetTokenEndpoint(op.URL+"/token", &clientauth.Client{ID: op.ClientID(), Secret: op.ClientSecret(), Method: clientauth.SecretBasic})
	return ct
}

// apiGrant is the grant of the tests' client-token APIs.
var apiGrant = ClientGrant{Scopes: []string{"api:read", "api:write"}, Resource: "https://api.example/"}

// bearerSeen sends a request with the session s (nil: none) through p
// and returns the Authorization the upstream saw.
func bearerSeen(t *testing.T, p *Proxy, s *session.Session) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	req.Header.Set("Authorization", "Bearer from-the-browser")
	got := decodeSeen(t, serve(p, req, s))
	return got.Header.Get("Authorization")
}

func TestTokenKinds(t *testing.T) {
	up := newEchoUpstream(t)
	op := testop.New(t, testop.Config{})
	tokens := newClientTokens(t, op, nil)
	client := tokens.For(apiGrant)
	tests := []struct {
		kind        string
		withSession bool
		want        string // the Authorization the upstream sees; "client" for the client token
		wantStatus  int    // when not 200
	}{
		{TokenUser, true, "Bearer at-1", 0},
		{TokenUser, false, "", http.StatusUnauthorized},
		{TokenClient, true, "client", 0},
		{TokenClient, false, "client", 0},
		{TokenUserOrClient, true, "Bearer at-1", 0},
		{TokenUserOrClient, false, "client", 0},
		{TokenUserOrNone, true, "Bearer at-1", 0},
		{TokenUserOrNone, false, "", 0},
		{TokenNone, true, "", 0},
		{TokenNone, false, "", 0},
	}
	for _, tt := range tests {
		name := tt.kind + "/without session"
		if tt.withSession {
			name = tt.kind + "/with session"
		}
		t.Run(name, func(t *testing.T) {
			p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) {
				c.Token, c.ClientTokens = tt.kind, client
			})
			var s *session.Session
			if tt.withSession {
				s = validSession()
			}
			if tt.wantStatus != 0 {
				req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
				wantJSONError(t, serve(p, req, s), tt.wantStatus, codeUnauthorized)
				return
			}
			got := bearerSeen(t, p, s)
			if tt.want == "client" {
				tok, ok := strings.CutPrefix(got, "Bearer ")
				info, issued := op.ClientTokenInfo(tok)
				if !ok || !issued {
					t.Fatalf("upstream saw Authorization %q, want the client token", got)
				}
				if info.Scope != "api:read api:write" || info.Resource != apiGrant.Resource {
					t.Errorf("client token issued for scope %q resource %q, want %q %q", info.Scope, info.Resource, "api:read api:write", apiGrant.Resource)
				}
				return
			}
			if got != tt.want {
				t.Errorf("upstream saw Authorization %q, want %q", got, tt.want)
			}
		})
	}
	if n := op.ClientCredentialsCount(); n != 1 {
		t.Errorf("client_credentials grants = %d, want 1 (the token is reused by every API request)", n)
	}
}

// A session that ended while its token was refreshed counts as none:
// user_or_none forwards anonymously, user_or_client with the client
// token, user answers 401.
func TestTokenKindsSessionEnded(t *testing.T) {
	up := newEchoUpstream(t)
	op := testop.New(t, testop.Config{})
	client := newClientTokens(t, op, nil).For(apiGrant)
	ended := staticTokens{err: ErrSessionEnded}
	p := newTestProxy(t, up.URL, ended, nil, func(c *Config) { c.Token, c.ClientTokens = TokenUserOrNone, client })
	if got := bearerSeen(t, p, validSession()); got != "" {
		t.Errorf("user_or_none: upstream saw Authorization %q, want none", got)
	}
	p = newTestProxy(t, up.URL, ended, nil, func(c *Config) { c.Token, c.ClientTokens = TokenUserOrClient, client })
	if got := bearerSeen(t, p, validSession()); !strings.HasPrefix(got, "Bearer cc-") {
		t.Errorf("user_or_client: upstream saw Authorization %q, want the client token", got)
	}
	p = newTestProxy(t, up.URL, ended, nil, nil)
	wantJSONError(t, serve(p, httptest.NewRequest(http.MethodGet, "/api/x", nil), validSession()), http.StatusUnauthorized, codeUnauthorized)
}

func TestClientTokenOneGrantForConcurrentRequests(t *testing.T) {
	up := newEchoUpstream(t)
	op := testop.New(t, testop.Config{})
	p := newTestProxy(t, up.URL, nil, nil, func(c *Config) {
		c.Token, c.ClientTokens = TokenClient, newClientTokens(t, op, nil).For(apiGrant)
	})
	held, release := op.HoldClientCredentials()
	const n = 50
	var wg sync.WaitGroup
	seen := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			rec := serve(p, httptest.NewRequest(http.MethodGet, "/api/x", nil), nil)
			codes[i] = rec.Code
			if rec.Code == http.StatusOK {
				seen[i] = decodeSeenBody(rec).Header.Get("Authorization")
			}
		})
	}
	<-held // one grant is at the IdP; the other requests wait for it
	release()
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusOK || seen[i] != seen[0] || seen[0] == "" {
			t.Fatalf("request %d: status %d, Authorization %q; want 200 and the one client token %q", i, codes[i], seen[i], seen[0])
		}
	}
	if got := op.ClientCredentialsCount(); got != 1 {
		t.Errorf("client_credentials grants for %d concurrent requests = %d, want 1", n, got)
	}
}

func TestClientTokenRenewedWithinMargin(t *testing.T) {
	op := testop.New(t, testop.Config{ClientTokenTTL: 100 * time.Second})
	clock := newFakeClock()
	src := newClientTokens(t, op, func(c *ClientTokensConfig) { c.Now, c.Leeway = clock.Now, 30*time.Second }).For(apiGrant)
	ctx := context.Background()
	first, err := src.ClientToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The margin is a quarter of the 100 s lifetime (25 s), shorter than
	// the 30 s leeway: no grant until 75 s have passed.
	clock.Advance(74 * time.Second)
	if tok, err := src.ClientToken(ctx); err != nil || tok != first {
		t.Fatalf("at 74s: token %q, %v; want the first token %q", tok, err, first)
	}
	if n := op.ClientCredentialsCount(); n != 1 {
		t.Fatalf("grants before the margin = %d, want 1", n)
	}
	clock.Advance(2 * time.Second)
	second, err := src.ClientToken(ctx)
	if err != nil || second == first {
		t.Fatalf("at 76s: token %q, %v; want a new token", second, err)
	}
	if n := op.ClientCredentialsCount(); n != 2 {
		t.Errorf("grants after the margin = %d, want 2", n)
	}
}

func TestClientTokenIdPFailures(t *testing.T) {
	up := newEchoUpstream(t)
	tests := []struct {
		name       string
		fail       func(op *testop.OP)
		wantStatus int
		wantCode   string
		wantResult string // what Observe is told of the failed grants
	}{
		{"idp answers 503", func(op *testop.OP) { op.FailClientCredentials(http.StatusServiceUnavailable) }, http.StatusServiceUnavailable, codeTokenUnavailable, "failed"},
		{"idp refuses the grant", func(op *testop.OP) { op.FailClientCredentials(http.StatusBadRequest) }, http.StatusBadGateway, codeBadGateway, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := testop.New(t, testop.Config{})
			var mu sync.Mutex
			var results []string
			observe := func(r string) { mu.Lock(); results = append(results, r); mu.Unlock() }
			p := newTestProxy(t, up.URL, nil, nil, func(c *Config) {
				c.Token, c.ClientTokens = TokenClient, newClientTokens(t, op, func(c *ClientTokensConfig) { c.Observe = observe }).For(apiGrant)
			})
			tt.fail(op)
			for range 2 { // nothing is cached: each request asks again
				rec := serve(p, httptest.NewRequest(http.MethodGet, "/api/x", nil), nil)
				wantJSONError(t, rec, tt.wantStatus, tt.wantCode)
				if body := rec.Body.String(); strings.Contains(body, op.URL) || strings.Contains(body, "127.0.0.1") {
					t.Errorf("error body %q reveals the IdP's address", body)
				}
			}
			if n := len(op.ClientCredentialsRequests()); n != 2 {
				t.Errorf("grant attempts = %d, want 2 (a failure is not cached)", n)
			}
			op.FailClientCredentials(0)
			if got := decodeSeen(t, serve(p, httptest.NewRequest(http.MethodGet, "/api/x", nil), nil)); !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer cc-") {
				t.Errorf("after recovery: Authorization %q, want the client token", got.Header.Get("Authorization"))
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{tt.wantResult, tt.wantResult, "ok"}; !slices.Equal(results, want) {
				t.Errorf("grant results = %q, want %q", results, want)
			}
		})
	}
	t.Run("idp unreachable", func(t *testing.T) {
		op := testop.New(t, testop.Config{})
		tokens := newClientTokens(t, op, nil)
		tokens.SetTokenEndpoint("http://127.0.0.1:1/token", &clientauth.Client{ID: "client", Secret: "s", Method: clientauth.SecretBasic})
		p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) { c.Token, c.ClientTokens = TokenUserOrClient, tokens.For(apiGrant) })
		rec := serve(p, httptest.NewRequest(http.MethodGet, "/api/x", nil), nil)
		wantJSONError(t, rec, http.StatusServiceUnavailable, codeTokenUnavailable)
		if strings.Contains(rec.Body.String(), "127.0.0.1") {
			t.Errorf("error body %q reveals the token endpoint", rec.Body)
		}
	})
}

// A token still valid but within its margin is used while the IdP is
// down, rather than failing the request.
func TestClientTokenKeptWhileIdPDown(t *testing.T) {
	op := testop.New(t, testop.Config{ClientTokenTTL: 100 * time.Second})
	clock := newFakeClock()
	src := newClientTokens(t, op, func(c *ClientTokensConfig) { c.Now = clock.Now }).For(apiGrant)
	ctx := context.Background()
	first, err := src.ClientToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op.FailClientCredentials(http.StatusServiceUnavailable)
	clock.Advance(90 * time.Second)
	if tok, err := src.ClientToken(ctx); err != nil || tok != first {
		t.Errorf("within the margin, IdP down: %q, %v; want the current token", tok, err)
	}
	clock.Advance(11 * time.Second)
	if tok, err := src.ClientToken(ctx); err == nil {
		t.Errorf("expired, IdP down: got token %q, want an error", tok)
	}
}

func decodeSeenBody(rec *httptest.ResponseRecorder) seen {
	var got seen
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	return got
}

// At the margin, concurrent requests make one new grant between them.
func TestClientTokenOneGrantAtExpiry(t *testing.T) {
	op := testop.New(t, testop.Config{ClientTokenTTL: 100 * time.Second})
	clock := newFakeClock()
	src := newClientTokens(t, op, func(c *ClientTokensConfig) { c.Now = clock.Now }).For(apiGrant)
	ctx := context.Background()
	first, err := src.ClientToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(99 * time.Second)
	held, release := op.HoldClientCredentials()
	const n = 30
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = src.ClientToken(ctx) })
	}
	<-held
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] == first || got[i] != got[0] {
			t.Fatalf("request %d: %q, %v; want one new token for all", i, got[i], errs[i])
		}
	}
	if c := op.ClientCredentialsCount(); c != 2 {
		t.Errorf("grants = %d, want 2 (the first, and one at the margin for %d requests)", c, n)
	}
}
