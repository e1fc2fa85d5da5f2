package bff

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/internal/testop"
)

// dpopHarness is a gateway whose app has dpop = true, in front of an OP
// that binds tokens to DPoP keys; mutate may change the app further.
func dpopHarness(t testing.TB, mutate func(*AppConfig)) *harness {
	return newHarness(t, harnessOpts{op: testop.Config{DPoP: true}, mutate: func(a *AppConfig) {
		a.DPoP = true
		if mutate != nil {
			mutate(a)
		}
	}})
}

// verifyAPIProof checks, as a resource server would, the DPoP request r
// the API upstream at base got: the DPoP scheme, a proof of its method
// and URL with the token's ath, and a key whose thumbprint is the
// token's cnf.jkt at the OP. It returns the proof.
func verifyAPIProof(t *testing.T, h *harness, v *dpop.Verifier, base string, r *http.Request) dpop.Proof {
	t.Helper()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
	if !ok {
		t.Fatalf("the API got Authorization %q, want the DPoP scheme", r.Header.Get("Authorization"))
	}
	u, _ := url.Parse(base + r.URL.RequestURI())
	p, err := v.Verify(r, u, tok)
	if err != nil {
		t.Fatalf("the API's proof does not verify: %v", err)
	}
	if jkt := h.op.AccessTokenJKT(tok); jkt == "" || jkt != p.JKT {
		t.Fatalf("proof key %q, token's cnf.jkt %q: want the same, bound", p.JKT, jkt)
	}
	return p
}

// TestDPoPLogin: the code exchange carries a proof of the session's own
// key, the OP binds the tokens to it, and the key is kept in the session.
func TestDPoPLogin(t *testing.T) {
	h := dpopHarness(t, nil)
	c := h.login("/")
	s := h.sessionOf(c)
	if s.TokenType != "DPoP" || len(s.DPoPKey) != 32 {
		t.Fatalf("session token_type %q, key %d bytes: want DPoP and a 32-byte key", s.TokenType, len(s.DPoPKey))
	}
	key, err := dpop.ParseKey(s.DPoPKey)
	if err != nil {
		t.Fatal(err)
	}
	proofs := h.op.DPoPProofs()
	if len(proofs) != 1 || proofs[0].GrantType != "authorization_code" || proofs[0].JKT != key.Thumbprint() {
		t.Fatalf("proofs at the OP = %+v, want one code exchange with the session key %s", proofs, key.Thumbprint())
	}
	if got := h.op.AccessTokenJKT(s.AccessToken); got != key.Thumbprint() {
		t.Errorf("access token cnf.jkt = %q, want the session key's %q", got, key.Thumbprint())
	}
	// Another login, another key.
	if s2 := h.sessionOf(h.login("/")); string(s2.DPoPKey) == string(s.DPoPKey) {
		t.Error("two sessions share a DPoP key")
	}
}

// TestDPoPAPICall: each proxied call carries "Authorization: DPoP" and a
// fresh proof (htm, htu without the query, ath, a new jti) of the key
// the token is bound to; the same token without the key is refused by a
// verifying API.
func TestDPoPAPICall(t *testing.T) {
	h := dpopHarness(t, nil)
	c := h.login("/")
	var v dpop.Verifier
	var jtis []string
	for range 2 {
		if code, b := h.apiGet(c, "/api/hello?x=1"); code != http.StatusOK {
			t.Fatalf("API call = %d %s", code, b)
		}
		r := h.lastAPIRequest()
		jtis = append(jtis, verifyAPIProof(t, h, &v, h.api.URL, r).JTI)
	}
	if jtis[0] == jtis[1] {
		t.Errorf("two calls share the jti %s", jtis[0])
	}
	// A thief with the token but not the key: as a bearer, with no
	// proof, or with a proof of its own key.
	tok := h.sessionOf(c).AccessToken
	u, _ := url.Parse(h.api.URL + "/api/hello")
	thief, _ := dpop.NewKey()
	own, _ := thief.Proof("GET", u, tok, "", time.Now())
	for name, proof := range map[string]string{"bearer": "", "own key": own} {
		r := httptest.NewRequest("GET", "/api/hello", nil)
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		p, err := v.Verify(r, u, tok)
		if err == nil && p.JKT == h.op.AccessTokenJKT(tok) {
			t.Errorf("%s: the stolen token is accepted", name)
		}
	}
}

// TestDPoPRefresh: a refresh carries a proof of the session's key and
// gets tokens bound to it again.
func TestDPoPRefresh(t *testing.T) {
	h := dpopHarness(t, nil)
	c := h.login("/")
	s := h.sessionOf(c)
	s.TokenExpiry = time.Now().Add(-time.Second) // due
	if err := h.store.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if code, b := h.apiGet(c, "/api/x"); code != http.StatusOK {
		t.Fatalf("API call = %d %s", code, b)
	}
	if h.op.RefreshCount() != 1 {
		t.Fatalf("refreshes = %d, want 1", h.op.RefreshCount())
	}
	key, _ := dpop.ParseKey(s.DPoPKey)
	proofs := h.op.DPoPProofs()
	if last := proofs[len(proofs)-1]; last.GrantType != "refresh_token" || last.JKT != key.Thumbprint() {
		t.Errorf("last proof at the OP = %+v, want the refresh with the session key", last)
	}
	var v dpop.Verifier
	verifyAPIProof(t, h, &v, h.api.URL, h.lastAPIRequest())
	if got := h.sessionOf(c); got.AccessToken == s.AccessToken || got.TokenType != "DPoP" {
		t.Errorf("after the refresh: token_type %q, new token %v; want DPoP and a new token", got.TokenType, got.AccessToken != s.AccessToken)
	}
}

// TestDPoPNonce: a use_dpop_nonce challenge is answered with one retry,
// at the token endpoint and at an API, and the nonce is then sent first.
func TestDPoPNonce(t *testing.T) {
	api := struct {
		v     dpop.Verifier
		calls chan error
	}{calls: make(chan error, 10)}
	api.v.Nonce = func() string { return "api-nonce" }
	var apiURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := url.Parse(apiURL + r.URL.RequestURI())
		_, err := api.v.Verify(r, u, strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "))
		api.calls <- err
		w.Header().Set("DPoP-Nonce", "api-nonce")
		if errors.Is(err, dpop.ErrUseNonce) {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	apiURL = srv.URL
	h := dpopHarness(t, func(a *AppConfig) {
		a.APIs = append(a.APIs, APIConfig{Path: "/nonce/", Upstream: srv.URL})
	})
	h.op.SetDPoPNonce("op-nonce")
	c := h.login("/")
	if n := h.op.DPoPNonceChallenges(); n != 1 {
		t.Errorf("use_dpop_nonce at /token = %d, want 1 (then the retry)", n)
	}
	if p := h.op.DPoPProofs(); len(p) != 1 || p[0].Nonce != "op-nonce" {
		t.Errorf("accepted proofs = %+v, want the code exchange with the nonce", p)
	}
	for i, want := range []int{2, 1} { // first: challenge + retry; then the nonce is known
		if code, b := h.apiGet(c, "/nonce/x"); code != http.StatusOK {
			t.Fatalf("call %d = %d %s", i, code, b)
		}
		var errs []error
		for range want {
			errs = append(errs, <-api.calls)
		}
		if errs[len(errs)-1] != nil || len(api.calls) != 0 {
			t.Errorf("call %d: API saw %v (and %d more), want %d request(s), the last accepted", i, errs, len(api.calls), want)
		}
	}
}

// TestDPoPBearerAPI: an API with dpop = false gets a bearer token when
// the IdP issued an unbound one, and a DPoP-bound token is refused with
// 502 rather than sent there.
func TestDPoPBearerAPI(t *testing.T) {
	off := false
	plain := func(a *AppConfig) {
		a.DPoP = true
		a.APIs = append(a.APIs, APIConfig{Path: "/plain/", Upstream: a.APIs[0].Upstream, DPoP: &off})
	}
	t.Run("bound token", func(t *testing.T) {
		h := newHarness(t, harnessOpts{op: testop.Config{DPoP: true}, mutate: plain})
		c := h.login("/")
		code, b := h.apiGet(c, "/plain/x")
		if code != http.StatusBadGateway || !strings.Contains(b, "DPoP") {
			t.Errorf("dpop = false API with a bound token = %d %s, want 502 saying why", code, b)
		}
		if strings.Contains(b, h.sessionOf(c).AccessToken) {
			t.Error("the answer leaks the token")
		}
	})
	t.Run("unbound token", func(t *testing.T) {
		h := newHarness(t, harnessOpts{mutate: plain}) // the OP ignores DPoP
		c := h.login("/")
		tok := h.sessionOf(c).AccessToken
		for _, path := range []string{"/plain/x", "/api/x"} {
			if code, b := h.apiGet(c, path); code != http.StatusOK {
				t.Fatalf("%s = %d %s", path, code, b)
			}
			if got := h.lastAPIRequest(); got.Header.Get("Authorization") != "Bearer "+tok || got.Header.Get("DPoP") != "" {
				t.Errorf("%s got Authorization %q and a proof %v, want the bearer alone", path, got.Header.Get("Authorization"), got.Header.Get("DPoP") != "")
			}
		}
	})
}

// TestDPoPRevocation: logging out revokes the bound refresh token (the
// revocation endpoint takes client authentication, no proof).
func TestDPoPRevocation(t *testing.T) {
	h := dpopHarness(t, nil)
	c := h.login("/")
	rt := h.sessionOf(c).RefreshToken
	if resp := h.get(c, h.logoutURL(c)); resp.StatusCode != http.StatusFound {
		t.Fatalf("logout: status = %d, want 302", resp.StatusCode)
	}
	waitFor(t, "the bound refresh token revoked at the IdP", func() bool { return slices.Contains(h.op.Revoked(), rt) })
}
