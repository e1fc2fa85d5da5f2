package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/upstream"
)

// isGatewayCookie stands in for session.IsGatewayCookie.
func isGatewayCookie(name string) bool {
	return name == "bffgate" || strings.HasPrefix(name, "__Host-bffgate")
}

// staticTokens is a TokenSource returning fixed values.
type staticTokens struct {
	token string
	err   error
}

func (f staticTokens) AccessToken(context.Context, *session.Session) (string, error) {
	return f.token, f.err
}

// recorder is a UsageRecorder that counts its calls.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int // by session id + "/" + upstream
	err   error
}

func (f *recorder) MarkUpstream(_ context.Context, id, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[id+"/"+name]++
	return f.err
}

func (f *recorder) count(id, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id+"/"+name]
}

// sessions is a real session.Manager over a MemoryStore holding the given
// sessions. Its store counts the token replacements it made and fails
// them with err if set; the sessions ended are recorded.
type sessions struct {
	*session.Manager
	st *countingStore

	mu    sync.Mutex
	ended []endCall
}

type countingStore struct {
	session.Store
	mu       sync.Mutex
	replaced int
	err      error
}

func (c *countingStore) ReplaceTokens(ctx context.Context, id, from string, t session.Tokens) (*session.Session, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, false, c.err
	}
	s, ok, err := c.Store.ReplaceTokens(ctx, id, from, t)
	if ok {
		c.replaced++
	}
	return s, ok, err
}

type endCall struct {
	id    string
	cause session.Cause
}

func newSessions(t testing.TB, ss ...*session.Session) *sessions {
	t.Helper()
	mem := session.NewMemoryStore(session.MemoryConfig{})
	t.Cleanup(func() { mem.Close() })
	f := &sessions{st: &countingStore{Store: mem}}
	f.Manager = session.NewManager(f.st, nil)
	f.Observe(session.ObserverFunc(func(_ context.Context, cause session.Cause, s *session.Session) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ended = append(f.ended, endCall{s.ID, cause})
	}))
	for _, s := range ss {
		if err := f.Create(context.Background(), s); err != nil {
			t.Fatalf("create session: %v", err)
		}
	}
	return f
}

// failReplace makes every token replacement fail with err.
func (f *sessions) failReplace(err error) {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	f.st.err = err
}

// saved returns how many token replacements were made and the session
// as stored (nil if gone).
func (f *sessions) saved(id string) (int, *session.Session) {
	f.st.mu.Lock()
	n := f.st.replaced
	f.st.mu.Unlock()
	s, _ := f.Get(context.Background(), id)
	return n, s
}

func (f *sessions) calls() []endCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]endCall(nil), f.ended...)
}

// seen is what the echo upstream saw of a request.
type seen struct {
	Method string
	Path   string
	Query  string
	Host   string
	Header http.Header
}

// newEchoUpstream starts an upstream that answers every request with the
// JSON of what it saw.
func newEchoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newTestProxy builds a Proxy for target; edit adjusts the Config.
func newTestProxy(t *testing.T, target string, tokens TokenSource, used UsageRecorder, edit func(*Config)) *Proxy {
	t.Helper()
	cfg := Config{Name: "api", Target: mustURL(t, target), Token: TokenUser, IsGatewayCookie: isGatewayCookie, WriteError: writeTestError}
	if edit != nil {
		edit(&cfg)
	}
	if used == nil {
		used = &recorder{}
	}
	tr := upstream.NewTransport(upstream.TransportConfig{})
	t.Cleanup(tr.CloseIdleConnections)
	p, err := New(cfg, tr, tokens, used, nil)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return p
}

// validSession returns a session whose access token is valid for an hour.
func validSession() *session.Session {
	return &session.Session{
		ID: "s1", App: "demo", Issuer: "https://idp.example", Subject: "alice", SID: "idp-sid",
		AccessToken: "at-1", RefreshToken: "rt-1", TokenExpiry: time.Now().Add(time.Hour),
	}
}

// serve sends req with the session s (nil for none) to p, as the bff does.
func serve(p *Proxy, req *http.Request, s *session.Session) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	p.ServeSession(rec, req, s)
	return rec
}

func decodeSeen(t *testing.T, rec *httptest.ResponseRecorder) seen {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", rec.Code, rec.Body)
	}
	var got seen
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode upstream echo: %v", err)
	}
	return got
}

// writeTestError is the ErrorWriter of the tests: the gateway's shape
// without a request id.
func writeTestError(w http.ResponseWriter, _ *http.Request, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// wantJSONError checks that rec is status with body {"error": code,
// "error_description": …} from the ErrorWriter.
func wantJSONError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d", rec.Code, status)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	if len(body) != 2 || body["error"] != code || body["error_description"] == "" {
		t.Errorf("body = %v, want {error: %q, error_description: …}", body, code)
	}
}

// tokenEndpoint is a fake IdP token endpoint for the refresh_token grant.
type tokenEndpoint struct {
	srv  *httptest.Server
	hits atomic.Int32
	// handle answers one refresh; the default issues "at-new" for an hour
	// without rotating the refresh token.
	handle func(w http.ResponseWriter, refreshToken string)
}

func newTokenEndpoint(t *testing.T) *tokenEndpoint {
	t.Helper()
	te := &tokenEndpoint{handle: func(w http.ResponseWriter, _ string) {
		writeTokenJSON(w, http.StatusOK, map[string]any{"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600})
	}}
	te.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.hits.Add(1)
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" {
			writeTokenJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
			return
		}
		te.handle(w, r.PostForm.Get("refresh_token"))
	}))
	t.Cleanup(te.srv.Close)
	return te
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (te *tokenEndpoint) oauth2Config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     "demo",
		ClientSecret: "secret",
		Endpoint:     oauth2.Endpoint{TokenURL: te.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
}

func (te *tokenEndpoint) refresher(ss Sessions) *Refresher {
	return NewRefresher(RefresherConfig{OAuth2: te.oauth2Config(), HTTPClient: te.srv.Client()}, ss, nil)
}

var errBoom = errors.New("boom")
