package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// TestIdPKeysAreChecked: -check-config validates the per-app keys of
// issue 13 (cookies, refresh_margin, userinfo), each with its key path.
func TestIdPKeysAreChecked(t *testing.T) {
	path := testConfig{app: `refresh_margin = "500ms"
userinfo_on_refresh = true
  [[apps.apis]]
  path = "/api/"
  upstream = "http://127.0.0.1:4000"
  cookies = ["theme", "a b", "__Host-bffgate-demo"]`}.write(t)
	msg := wantProblems(t, path,
		`apps[0].apis[0].cookies[1]: "a b" is not a cookie name`,
		"apps[0].refresh_margin: must be between 1s and 1h",
		"apps[0].userinfo_on_refresh: needs userinfo = true",
		`apps[0].apis[0].cookies[2]: "__Host-bffgate-demo" is the gateway's own cookie`,
	)
	if strings.Contains(msg, "cookies[0]") {
		t.Errorf("a valid cookie name was refused:\n%v", msg)
	}
}

// onlineConfig writes a one-app config against issuer with extra lines
// in [[apps]].
func onlineConfig(t *testing.T, issuer, clientID, extra string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(checkHead+`[[apps]]
name = "demo"
issuer = %q
client_id = %q
client_secret = "s"
frontend = "http://127.0.0.1:3000"
%s
`, issuer, clientID, extra))
}

// TestCheckConfigOnline: -check-config -online fetches the discovery and
// reports every mismatch at once with its key path; without -online the
// same config is valid (the issuer mismatch is what -check-config used to
// miss).
func TestCheckConfigOnline(t *testing.T) {
	op := testop.New(t, testop.Config{NoEndSession: true})
	path := onlineConfig(t, op.URL+"/", op.ClientID(), `id_token_signing_algs = ["RS256", "ES512"]`)
	check := func(args ...string) (string, error) { return runCheckConfig(t, path, nil, args...) }
	if _, err := check(); err != nil {
		t.Fatalf("offline check: %v", err)
	}
	_, err := check("-online")
	if err == nil || !strings.Contains(err.Error(), `apps[0].issuer: oidc discovery: issuer "`+op.URL+`/" is not the one the IdP reports: the IdP calls itself "`+op.URL+`"; set issuer to that`) {
		t.Fatalf("-online err = %v, want the issuer mismatch with its fix", err)
	}

	path = onlineConfig(t, op.URL, op.ClientID(), `id_token_signing_algs = ["RS256", "ES512", "PS256"]`)
	stdout, err := check("-online")
	for _, want := range []string{
		"apps[0].id_token_signing_algs[1]: the IdP does not sign with ES512",
		"apps[0].id_token_signing_algs[2]: the IdP does not sign with PS256",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("-online err = %v, want %q", err, want)
		}
	}
	if !strings.Contains(stdout, "warning: apps[0].issuer: the IdP has no end_session_endpoint") {
		t.Errorf("stdout = %q, want the missing end_session_endpoint", stdout)
	}

	path = onlineConfig(t, op.URL, op.ClientID(), "userinfo = true")
	if stdout, err := check("-online"); err != nil || !strings.Contains(stdout, "is valid") {
		t.Errorf("-online of a matching config: %v, %q", err, stdout)
	}
	if err := run(context.Background(), []string{"bffgate", "-config", path, "-online"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Errorf("-online without -check-config was accepted")
	}
}
