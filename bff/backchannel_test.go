package bff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session"
)

// postLogout sends a back-channel logout request with a raw body.
func (h *harness) postLogout(contentType, body string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/bff/backchannel-logout", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (h *harness) backchannel(token string) *http.Response {
	return h.postLogout("application/x-www-form-urlencoded", url.Values{"logout_token": {token}}.Encode())
}

// logoutToken signs the OP's default logout token claims after mutate.
func (h *harness) logoutToken(mutate func(map[string]any), opts testop.SignOpts) string {
	return h.op.Sign(h.op.LogoutToken(mutate), opts)
}

func errorOf(t *testing.T, resp *http.Response) (string, string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	return e.Error, e.Description
}

func (h *harness) signedIn(c *http.Client) bool {
	h.t.Helper()
	return h.get(c, "/bff/user", "X-CSRF", "1", "X-Test", "probe").StatusCode == http.StatusOK
}

func TestBackchannelEndsSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{}))
	if resp.StatusCode != http.StatusOK {
		_, d := errorOf(t, resp)
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, d)
	}
	if b := body(t, resp); b != "" {
		t.Errorf("body = %q, want empty", b)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if h.signedIn(c) {
		t.Error("the session survived the back-channel logout")
	}
	if resp := h.get(c, "/api/x", "X-CSRF", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after logout = %d, want 401", resp.StatusCode)
	}
	if got := testutil.ToFloat64(h.gw.logout.Metric().WithLabelValues("demo", "accepted", "", "")); got != 1 {
		t.Errorf("accepted logout tokens = %v, want 1", got)
	}
}

func TestBackchannelRequestShape(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	valid := func() string { return h.logoutToken(nil, testop.SignOpts{}) }
	tests := []struct {
		name        string
		contentType string
		body        func() string
		want        int
		wantErr     string
	}{
		{"json body", "application/json", func() string { return `{"logout_token":"` + valid() + `"}` }, 400, "invalid_request"},
		{"no content type", "", func() string { return "logout_token=" + valid() }, 400, "invalid_request"},
		{"charset parameter is fine", "application/x-www-form-urlencoded; charset=UTF-8", func() string { return "logout_token=" + valid() }, 200, ""},
		{"unknown parameters ignored", "application/x-www-form-urlencoded", func() string { return "ignored_parameter=1&logout_token=" + valid() }, 200, ""},
		{"missing token", "application/x-www-form-urlencoded", func() string { return "foo=bar" }, 400, "invalid_request"},
		{"empty token", "application/x-www-form-urlencoded", func() string { return "logout_token=" }, 400, "invalid_request"},
		{"repeated token", "application/x-www-form-urlencoded", func() string { return "logout_token=" + valid() + "&logout_token=" + valid() }, 400, "invalid_request"},
		{"garbage token", "application/x-www-form-urlencoded", func() string { return "logout_token=abc.def.ghi" }, 400, "invalid_request"},
		{"bad form encoding", "application/x-www-form-urlencoded", func() string { return "logout_token=%zz" }, 400, "invalid_request"},
		{"oversized body", "application/x-www-form-urlencoded", func() string { return "logout_token=" + strings.Repeat("a", 70<<10) }, 413, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.postLogout(tt.contentType, tt.body())
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.wantErr != "" {
				if e, _ := errorOf(t, resp); e != tt.wantErr {
					t.Errorf("error = %q, want %q", e, tt.wantErr)
				}
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
	t.Run("token in the query string only", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/bff/backchannel-logout?logout_token="+valid(), strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", resp.StatusCode)
		}
	})
	t.Run("GET is not allowed", func(t *testing.T) {
		resp := h.get(h.browser(), "/bff/backchannel-logout")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("status = %d, Allow = %q, want 405 and POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

// TestBackchannelValidation names every check of BCL §2.6 (and the
// gateway's extras); each token is rejected with 400 and ends nothing.
func TestBackchannelValidation(t *testing.T) {
	// Tokens no cached key verifies are refused without waiting for the
	// next JWKS fetch (the wait is tested in the logout package).
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) { a.JWKSRefetchWait = time.Millisecond }})
	c := h.login("/")
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	now := time.Now()
	replayed := h.logoutToken(set("sid", "not-this-session"), testop.SignOpts{})
	if resp := h.backchannel(replayed); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use of the replayed token = %d, want 200", resp.StatusCode)
	}
	tests := []struct {
		name     string
		token    string
		wantDesc string // a part of error_description
	}{
		{"wrong alg with a published key", h.logoutToken(nil, testop.SignOpts{Alg: "ES256", KID: "ec1"}), "alg"},
		{"alg none", h.logoutToken(nil, testop.SignOpts{Alg: "none"}), "alg"},
		{"alg NONE", h.logoutToken(nil, testop.SignOpts{Alg: "NONE"}), "alg"},
		{"HS256 not configured", h.logoutToken(nil, testop.SignOpts{Alg: "HS256"}), "alg"},
		{"unknown kid", h.logoutToken(nil, testop.SignOpts{KID: "nope"}), ""},
		{"wrong issuer", h.logoutToken(set("iss", "https://evil.example"), testop.SignOpts{}), ""},
		{"wrong audience", h.logoutToken(set("aud", "someone-else"), testop.SignOpts{}), "aud"},
		{"untrusted extra audience", h.logoutToken(set("aud", []string{h.op.ClientID(), "other"}), testop.SignOpts{}), "aud"},
		{"azp of another client", h.logoutToken(set("azp", "other"), testop.SignOpts{}), "azp"},
		{"no iat", h.logoutToken(del("iat"), testop.SignOpts{}), "iat"},
		{"iat in the future", h.logoutToken(set("iat", now.Add(5*time.Minute).Unix()), testop.SignOpts{}), "iat"},
		{"iat too old", h.logoutToken(set("iat", now.Add(-11*time.Minute).Unix()), testop.SignOpts{}), "iat"},
		{"no exp", h.logoutToken(del("exp"), testop.SignOpts{}), "allow_missing_exp"},
		{"expired", h.logoutToken(set("exp", now.Add(-2*time.Minute).Unix()), testop.SignOpts{}), "exp"},
		{"no jti", h.logoutToken(del("jti"), testop.SignOpts{}), "jti"},
		{"replayed jti", replayed, "already"},
		{"no events", h.logoutToken(del("events"), testop.SignOpts{}), "events"},
		{"events member not an object", h.logoutToken(set("events", map[string]any{testop.BackchannelLogoutEvent: true}), testop.SignOpts{}), "events"},
		{"events an array", h.logoutToken(set("events", []string{testop.BackchannelLogoutEvent}), testop.SignOpts{}), "events"},
		{"neither sub nor sid", h.logoutToken(func(m map[string]any) { delete(m, "sub"); delete(m, "sid") }, testop.SignOpts{}), "sub"},
		{"nonce present", h.logoutToken(set("nonce", "n"), testop.SignOpts{}), "nonce"},
		{"empty nonce present", h.logoutToken(set("nonce", ""), testop.SignOpts{}), "nonce"},
		{"typ at+jwt", h.logoutToken(nil, testop.SignOpts{Typ: "at+jwt"}), "typ"},
		{"typ secevent+jwt", h.logoutToken(nil, testop.SignOpts{Typ: "secevent+jwt"}), "typ"},
		{"an ID token", h.op.Sign(map[string]any{"iss": h.op.URL, "aud": h.op.ClientID(), "sub": "alice", "sid": h.op.LastSID(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": "n"}, testop.SignOpts{}), ""},
		{"signature of another key", func() string {
			tok := h.logoutToken(nil, testop.SignOpts{})
			other := h.logoutToken(set("sub", "mallory"), testop.SignOpts{})
			parts, otherParts := strings.Split(tok, "."), strings.Split(other, ".")
			return parts[0] + "." + otherParts[1] + "." + parts[2]
		}(), "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.backchannel(tt.token)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", resp.StatusCode)
			}
			e, d := errorOf(t, resp)
			if e != "invalid_request" || !strings.Contains(d, tt.wantDesc) {
				t.Errorf("error = %q %q, want invalid_request naming %q", e, d, tt.wantDesc)
			}
			if !h.signedIn(c) {
				t.Fatal("a rejected token ended the session")
			}
		})
	}
}

func TestBackchannelAccepts(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		name  string
		claim func(map[string]any)
		opts  testop.SignOpts
	}{
		{"typ logout+jwt", nil, testop.SignOpts{Typ: "logout+jwt"}},
		{"typ application/logout+JWT", nil, testop.SignOpts{Typ: "application/logout+JWT"}},
		{"typ JWT (older Keycloak)", nil, testop.SignOpts{Typ: "JWT"}},
		{"extra claim and events member", func(m map[string]any) {
			m["ignored_claim"] = "x"
			m["events"] = map[string]any{testop.BackchannelLogoutEvent: map[string]any{}, "revoke_offline_access": true}
		}, testop.SignOpts{}},
		{"aud as an array", func(m map[string]any) { m["aud"] = []string{h.op.ClientID()} }, testop.SignOpts{}},
		{"sid only", func(m map[string]any) { delete(m, "sub") }, testop.SignOpts{}},
		{"sub only", func(m map[string]any) { delete(m, "sid") }, testop.SignOpts{}},
		{"no matching session", func(m map[string]any) { m["sid"] = "unknown-sid" }, testop.SignOpts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.login("/")
			resp := h.backchannel(h.logoutToken(tt.claim, tt.opts))
			if resp.StatusCode != http.StatusOK {
				_, d := errorOf(t, resp)
				t.Fatalf("status = %d (%s), want 200", resp.StatusCode, d)
			}
			_ = c
		})
	}
}

func TestBackchannelScope(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.op.SetUser("alice", nil)
	alice1 := h.login("/")
	sid1 := h.op.LastSID()
	alice2 := h.login("/")
	h.op.SetUser("bob", nil)
	bob := h.login("/")

	// sid with a sub that does not match: nothing ends.
	resp := h.backchannel(h.logoutToken(func(m map[string]any) { m["sid"] = sid1; m["sub"] = "bob" }, testop.SignOpts{}))
	if resp.StatusCode != http.StatusOK || !h.signedIn(alice1) {
		t.Fatalf("sid of alice with sub bob: status %d, alice still signed in = %v; want 200 and true", resp.StatusCode, h.signedIn(alice1))
	}
	// sid alone: only that session.
	h.backchannel(h.logoutToken(func(m map[string]any) { m["sid"] = sid1; delete(m, "sub") }, testop.SignOpts{}))
	if h.signedIn(alice1) || !h.signedIn(alice2) || !h.signedIn(bob) {
		t.Fatalf("after sid logout: alice1 %v alice2 %v bob %v, want false true true", h.signedIn(alice1), h.signedIn(alice2), h.signedIn(bob))
	}
	// sub alone: every session of alice, none of bob.
	alice3 := h.login("/") // bob is the OP's user now
	_ = alice3
	h.op.SetUser("alice", nil)
	alice4 := h.login("/")
	h.backchannel(h.logoutToken(func(m map[string]any) { m["sub"] = "alice"; delete(m, "sid") }, testop.SignOpts{}))
	if h.signedIn(alice2) || h.signedIn(alice4) || !h.signedIn(bob) {
		t.Errorf("after sub logout: alice2 %v alice4 %v bob %v, want false false true", h.signedIn(alice2), h.signedIn(alice4), h.signedIn(bob))
	}
}

func TestBackchannelTombstoneRefusesLateCallback(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.browser()
	resp := h.get(c, "/bff/login")
	auth, _ := resp.Location()
	resp = h.get(c, auth.String())
	cb, _ := resp.Location()
	// The IdP logs the session out before the callback completes.
	if resp := h.backchannel(h.logoutToken(func(m map[string]any) { m["sid"] = h.op.LastSID() }, testop.SignOpts{})); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel = %d", resp.StatusCode)
	}
	if resp := h.get(c, cb.String()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback after the sid was logged out = %d, want 400", resp.StatusCode)
	}
	if h.signedIn(c) {
		t.Error("a logged-out sid got a session")
	}
}

// failingStore fails revocations, as a store that is down would.
type failingStore struct{ session.Store }

func (failingStore) RevokeSID(context.Context, string, string, string, string, time.Time) ([]*session.Session, error) {
	return nil, errors.New("store down")
}

func (failingStore) RevokeSub(context.Context, string, string, string, time.Time) ([]*session.Session, error) {
	return nil, errors.New("store down")
}

func TestBackchannelStoreFailureIsApplicationError(t *testing.T) {
	h := newHarness(t, harnessOpts{wrapStore: func(s session.Store) session.Store { return failingStore{s} }})
	resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{}))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", resp.StatusCode)
	}
	if e, d := errorOf(t, resp); e != "application_error" || strings.Contains(d, "store down") {
		t.Errorf("error = %q %q, want application_error without the detail", e, d)
	}
}

func TestBackchannelAllowMissingExp(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) { a.AllowMissingExp = true }})
	resp := h.backchannel(h.logoutToken(func(m map[string]any) { delete(m, "exp") }, testop.SignOpts{Typ: "JWT"}))
	if resp.StatusCode != http.StatusOK {
		_, d := errorOf(t, resp)
		t.Errorf("status = %d (%s), want 200 with allow_missing_exp", resp.StatusCode, d)
	}
}

func TestBackchannelRequireTyp(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(a *AppConfig) { a.RequireTyp = true }})
	for typ, want := range map[string]int{"": 400, "JWT": 400, "logout+jwt": 200} {
		if resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{Typ: typ})); resp.StatusCode != want {
			t.Errorf("typ %q: status = %d, want %d", typ, resp.StatusCode, want)
		}
	}
}

func TestBackchannelRevokesRefreshToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.login("/")
	rt := h.sessionOf(c).RefreshToken
	if resp := h.backchannel(h.logoutToken(nil, testop.SignOpts{})); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel = %d", resp.StatusCode)
	}
	waitFor(t, "the refresh token revoked at the IdP", func() bool { return slices.Contains(h.op.Revoked(), rt) })
}
