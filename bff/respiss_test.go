package bff

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// TestAuthorizationResponseISS: the callback compares the authorization
// response's iss with the app's issuer before the code is exchanged
// (RFC 9207): required when the IdP advertises it, and a present iss is
// always compared. A refused response exchanges nothing.
func TestAuthorizationResponseISS(t *testing.T) {
	tests := []struct {
		name       string
		advertised bool
		mode       testop.ISSMode
		reason     string // "" signs in
	}{
		{name: "advertised and right", advertised: true},
		{name: "advertised and missing", advertised: true, mode: testop.ISSOmit, reason: "iss_missing"},
		{name: "advertised and wrong", advertised: true, mode: testop.ISSWrong, reason: "iss_mismatch"},
		{name: "not advertised, absent"},
		{name: "not advertised, right", mode: testop.ISSAlways},
		{name: "not advertised, wrong", mode: testop.ISSWrong, reason: "iss_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{op: testop.Config{AuthorizationResponseISS: tt.advertised}})
			h.op.SetISS(tt.mode)
			c := h.browser()
			resp, visited := h.follow(c, "/bff/login")
			if tt.reason == "" {
				if !h.signedIn(c) {
					t.Fatalf("not signed in (%d at %s)", resp.StatusCode, visited[len(visited)-1])
				}
				return
			}
			b := body(t, resp)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %s", resp.StatusCode, b)
			}
			if strings.Contains(b, testop.WrongIssuer) {
				t.Errorf("page echoes the wrong issuer:\n%s", b)
			}
			if n := h.op.TokenCalls(); n != 0 {
				t.Errorf("token endpoint calls = %d, want 0 (nothing exchanged)", n)
			}
			if h.signedIn(c) {
				t.Error("signed in despite the refused iss")
			}
			if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": "failed", "reason": tt.reason}); got != 1 {
				t.Errorf(`bffgate_logins_total{result="failed",reason=%q} = %v, want 1`, tt.reason, got)
			}
		})
	}
}

// TestSilentLoginWrongISS: a silent login's callback with a wrong iss
// answers the result page, ok:false with a fixed error, and exchanges
// nothing.
func TestSilentLoginWrongISS(t *testing.T) {
	h := newHarness(t, harnessOpts{op: testop.Config{AuthorizationResponseISS: true}})
	h.op.SetISS(testop.ISSWrong)
	c := h.browser()
	final, _ := h.follow(c, "/bff/silent-login")
	if msg := h.silentAnswer(final); msg.OK || msg.Error != "iss_mismatch" {
		t.Errorf("message = %+v, want ok:false iss_mismatch", msg)
	}
	if n := h.op.TokenCalls(); n != 0 {
		t.Errorf("token endpoint calls = %d, want 0", n)
	}
}
