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

func (f *recorder) RecordUpstream(_ context.Context, s *session.Session, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[s.ID+"/"+name]++
	s.AddUpstream(name)
	return f.err
}

func (f *recorder) count(id, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id+"/"+name]
}

// store is a SessionUpdater keeping the last saved session.
type store struct {
	mu      sync.Mutex
	updates int
	last    *session.Session
	err     error
}

func (f *store) Update(_ context.Context, s *session.Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.updates++
	f.last = s.Clone()
	return nil
}

func (f *store) saved() (int, *session.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates, f.last
}

// ender is a SessionEnder recording its calls.
type ender struct {
	mu    sync.Mutex
	ended []endCall
}

type endCall struct {
	id    string
	cause session.Cause
}

func (f *ender) End(_ context.Context, id string, cause session.Cause) (*session.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, endCall{id, cause})
	return &session.Session{ID: id}, nil
}

func (f *ender) calls() []endCall {
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
	cfg := Config{Name: "api", Target: mustURL(t, target), Token: TokenUser, IsGatewayCookie: isGatewayCookie}
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

// serve sends req, with s in its context if not nil, to h.
func serve(h http.Handler, req *http.Request, s *session.Session) *httptest.ResponseRecorder {
	if s != nil {
		req = req.WithContext(session.NewContext(req.Context(), s))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
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

// wantJSONError checks that rec is status with body {"error": code}.
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
	if len(body) != 1 || body["error"] != code {
		t.Errorf("body = %v, want {error: %q}", body, code)
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

func (te *tokenEndpoint) refresher(st SessionUpdater, en SessionEnder) *Refresher {
	return NewRefresher(RefresherConfig{OAuth2: te.oauth2Config(), HTTPClient: te.srv.Client()}, st, en, nil)
}

var errBoom = errors.New("boom")
