package bff

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// Discovery fetched the IdP's keys: a login finds them cached, and its
// callback makes no JWKS request (only the code exchange).
func TestLoginCallbackFetchesNoJWKS(t *testing.T) {
	h, clock := loginHarness(t, nil)
	req := h.pendingCallback()
	clock.reset()
	h.callbackOK(req)
	if calls, _ := clock.counts(); calls["/jwks"] != 0 || calls["/token"] != 1 || len(calls) != 1 {
		t.Errorf("the OP got %v during the first callback, want one /token and no /jwks", calls)
	}
}

// Logins one after another, one of them refused by the token endpoint,
// reach the OP's token and userinfo endpoints over a single kept-alive
// connection: every answer is read to its end and closed.
func TestLoginCallbackReusesIdPConnection(t *testing.T) {
	h, clock := loginHarness(t, withUserinfo)
	h.callbackOK(h.pendingCallback())
	clock.reset()
	for i := range 10 {
		req := h.pendingCallback()
		replay := req.Clone(context.Background())
		h.callbackOK(req)
		if i == 5 { // the code is used: the token endpoint answers 400
			w := httptest.NewRecorder()
			h.gw.Handler().ServeHTTP(w, replay)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("replayed callback: status %d, want 400", w.Code)
			}
		}
	}
	calls, conns := clock.counts("/token", "/userinfo", "/jwks")
	if calls["/token"] != 11 || calls["/userinfo"] != 10 || conns != 1 {
		t.Errorf("the OP got %v over %d connections, want 11 /token and 10 /userinfo over 1", calls, conns)
	}
}

// maxCallbackAllocs bounds the heap allocations of one /bff/callback
// outside the OP's handler (the gateway's, and net/http's on both sides
// of the exchange): 409 when it was set (424 with -race), 461 before the
// login path was trimmed.
const maxCallbackAllocs = 450

// A callback's allocations stay under maxCallbackAllocs: nothing built
// per login that could be built once, no claims decoded and encoded
// again.
func TestLoginCallbackAllocs(t *testing.T) {
	h, clock := loginHarness(t, nil)
	clock.mem = true
	const n = 30
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = h.pendingCallback()
	}
	h.callbackOK(h.pendingCallback()) // warm
	runtime.GC()
	clock.reset()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for _, req := range reqs {
		h.callbackOK(req)
	}
	runtime.ReadMemStats(&m1)
	opObjects, _ := clock.allocs()
	got := (m1.Mallocs - m0.Mallocs - opObjects) / n
	t.Logf("%d allocations per callback outside the OP", got)
	if got > maxCallbackAllocs {
		t.Errorf("%d allocations per callback outside the OP, want at most %d", got, maxCallbackAllocs)
	}
}

// The session keeps the ID token's claims as the IdP sent them and its
// sid; a sid that is not a string is no sid, and the login still works.
func TestLoginStoresIDTokenClaims(t *testing.T) {
	t.Run("sid", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		h.op.SetUser("alice", map[string]any{"groups": []string{"a", "b"}})
		s := h.sessionOf(h.login("/"))
		var claims map[string]any
		if err := json.Unmarshal(s.Claims, &claims); err != nil {
			t.Fatalf("stored claims %q: %v", s.Claims, err)
		}
		if s.SID == "" || s.SID != h.op.LastSID() || claims["sid"] != s.SID || claims["sub"] != "alice" || claims["iss"] != h.op.URL {
			t.Errorf("session sid %q (OP's %q), claims %v", s.SID, h.op.LastSID(), claims)
		}
		if g, _ := claims["groups"].([]any); len(g) != 2 {
			t.Errorf("claims %v, want the ID token's groups", claims)
		}
	})
	t.Run("sid not a string", func(t *testing.T) {
		h := newHarness(t, harnessOpts{op: testop.Config{OmitSID: true}})
		h.op.SetUser("alice", map[string]any{"sid": 42})
		if s := h.sessionOf(h.login("/")); s.SID != "" {
			t.Errorf("session sid %q, want none", s.SID)
		}
	})
}

// loginSecrets are HMAC-SHA256 of purpose NUL state under the derived
// key, whichever pooled HMAC computes them, from any goroutine.
func TestLoginSecretsKnownAnswer(t *testing.T) {
	sc := newStateCookies(testSecret, false)
	want := func(purpose, state string) string {
		m := hmac.New(sha256.New, sc.derive)
		m.Write([]byte(purpose + "\x00" + state))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				state := "state-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				nonce, verifier := sc.loginSecrets(state)
				if nonce != want("nonce", state) || verifier != want("verifier", state) || len(verifier) != 43 {
					errs <- state
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("loginSecrets(%q) is not HMAC-SHA256(purpose NUL state)", s)
	}
}
