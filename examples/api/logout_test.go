package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeGateway is the gateway as an issuer: discovery, JWKS and a key that
// signs logout tokens.
type fakeGateway struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": g.srv.URL, "jwks_uri": g.srv.URL + "/.well-known/jwks.json",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"},
		}})
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// claims returns a valid logout token's claims for the API (aud demo-api).
func (g *fakeGateway) claims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": g.srv.URL, "aud": "demo-api", "iat": now, "exp": now + 120,
		"jti": "jti-" + rand.Text(), "sub": "alice", "sid": "sid-1",
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
}

func (g *fakeGateway) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", "k1")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func postLogout(t *testing.T, h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/logout", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func form(token string) string { return url.Values{"logout_token": {token}}.Encode() }

func TestLogoutReceiver(t *testing.T) {
	g := newFakeGateway(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(map[string]any)) string {
		c := g.claims()
		change(c)
		return g.sign(t, g.key, c)
	}
	const formType = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		contentType string
		body        string
	}{
		{"wrong content type", "application/json", `{"logout_token":"x"}`},
		{"no token", formType, "foo=bar"},
		{"two tokens", formType, form("a") + "&" + form("b")},
		{"not a JWT", formType, form("not-a-jwt")},
		{"other key", formType, form(g.sign(t, otherKey, g.claims()))},
		{"wrong aud", formType, form(with(func(c map[string]any) { c["aud"] = "someone-else" }))},
		{"wrong iss", formType, form(with(func(c map[string]any) { c["iss"] = "http://evil.example" }))},
		{"expired", formType, form(with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))},
		{"no events", formType, form(with(func(c map[string]any) { delete(c, "events") }))},
		{"nonce", formType, form(with(func(c map[string]any) { c["nonce"] = "n" }))},
		{"no sub or sid", formType, form(with(func(c map[string]any) { delete(c, "sub"); delete(c, "sid") }))},
		{"no iat", formType, form(with(func(c map[string]any) { delete(c, "iat") }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			lr := newLogoutReceiver(logoutReceiverConfig{Gateway: g.srv.URL, Audience: "demo-api"},
				g.srv.Client(), slog.New(slog.NewTextHandler(&logs, nil)), nil)
			rec := postLogout(t, lr, tt.contentType, tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", rec.Code)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "invalid_request" {
				t.Errorf("body = %q, want a JSON error invalid_request", rec.Body)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if strings.Contains(logs.String(), "valid logout token") {
				t.Errorf("logged a valid logout token:\n%s", logs.String())
			}
		})
	}
}

func TestLogoutReceiverValidToken(t *testing.T) {
	g := newFakeGateway(t)
	var logs bytes.Buffer
	var forgotten []string
	lr := newLogoutReceiver(logoutReceiverConfig{Gateway: g.srv.URL, Audience: "demo-api"},
		g.srv.Client(), slog.New(slog.NewTextHandler(&logs, nil)), func(sub string) { forgotten = append(forgotten, sub) })
	// Members it does not understand are ignored (Back-Channel Logout §2.4).
	c := g.claims()
	c["ignored_claim"] = "x"
	token := g.sign(t, g.key, c)
	body := form(token) + "&ignored_parameter=1"

	rec := postLogout(t, lr, "application/x-www-form-urlencoded", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d %s, want 200", rec.Code, rec.Body)
	}
	if b, _ := io.ReadAll(rec.Body); len(b) != 0 {
		t.Errorf("body = %q, want empty", b)
	}
	want := `msg="valid logout token" iss=` + g.srv.URL + " sub_hash=" + hashForLog("alice") + " sid_hash=" + hashForLog("sid-1")
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log = %q, want a line with %q", logs.String(), want)
	}
	if len(forgotten) != 1 || forgotten[0] != "alice" {
		t.Errorf("forgotten = %q, want [alice]", forgotten)
	}

	// The same token again is a replay.
	if rec := postLogout(t, lr, "application/x-www-form-urlencoded", body); rec.Code != http.StatusBadRequest {
		t.Errorf("replayed token: status = %d, want 400", rec.Code)
	}
}

// The gateway may start after the API: a failed discovery is retried on
// the next request.
func TestLogoutReceiverDiscoversLazily(t *testing.T) {
	g := newFakeGateway(t)
	lr := newLogoutReceiver(logoutReceiverConfig{Gateway: "http://127.0.0.1:1", Audience: "demo-api"},
		g.srv.Client(), slog.New(slog.DiscardHandler), nil)
	if rec := postLogout(t, lr, "application/x-www-form-urlencoded", form(g.sign(t, g.key, g.claims()))); rec.Code != http.StatusBadRequest {
		t.Fatalf("gateway down: status = %d, want 400", rec.Code)
	}
	lr.cfg.Gateway = g.srv.URL
	if rec := postLogout(t, lr, "application/x-www-form-urlencoded", form(g.sign(t, g.key, g.claims()))); rec.Code != http.StatusOK {
		t.Fatalf("gateway up: status = %d %s, want 200", rec.Code, rec.Body)
	}
}

func TestIntrospectorForgetSubject(t *testing.T) {
	in := newIntrospector(introspectorConfig{CacheTTL: time.Minute}, http.DefaultClient)
	in.remember("a", tokenInfo{Subject: "alice"})
	in.remember("b", tokenInfo{Subject: "bob"})
	in.forgetSubject("alice")
	if _, ok := in.cache.Get("a"); ok {
		t.Error("alice's result is still cached")
	}
	if _, ok := in.cache.Get("b"); !ok {
		t.Error("bob's result was dropped")
	}
}
