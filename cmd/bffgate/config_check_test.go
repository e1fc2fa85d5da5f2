package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// checkHead is [server] and [session] of the -check-config tests that
// write their [[apps]] by hand.
const checkHead = `
[server]
public_url = "http://127.0.0.1:8080"
[session]
secret = "0123456789abcdef0123456789abcdef"
`

// runCheckConfig runs -check-config (and args) on the config file at
// path and returns its stdout and error.
func runCheckConfig(t *testing.T, path string, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout bytes.Buffer
	err := run(context.Background(), append([]string{"bffgate", "-config", path, "-check-config"}, args...), env(vars), &stdout, &bytes.Buffer{})
	return stdout.String(), err
}

// checkConfig runs -check-config on body and returns the error text.
func checkConfig(t *testing.T, body string, vars map[string]string) string {
	t.Helper()
	stdout, err := runCheckConfig(t, writeConfig(t, body), vars)
	if err == nil {
		t.Fatalf("-check-config accepted a broken config: %s", stdout)
	}
	return err.Error()
}

// wantProblems runs -check-config on the config file at path and checks
// that it refuses it with each of want (a key path and its problem) in
// the error, in any order; it returns the error text.
func wantProblems(t *testing.T, path string, want ...string) string {
	t.Helper()
	_, err := runCheckConfig(t, path, nil)
	if err == nil {
		t.Fatal("-check-config accepted a broken config")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	return err.Error()
}

// wantInOrder checks that each of want is in msg, in this order.
func wantInOrder(t *testing.T, msg string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(msg[at:], w)
		if i < 0 {
			if strings.Contains(msg, w) {
				t.Errorf("%q is out of file order in:\n%s", w, msg)
			} else {
				t.Errorf("error lacks %q:\n%s", w, msg)
			}
			continue
		}
		at += i + len(w)
	}
}

// TestCheckConfigTypeErrorsWithEveryOtherProblem: a wrong type or an
// unparsable duration no longer hides every other problem; each is
// reported with its key path, all in file order.
func TestCheckConfigTypeErrorsWithEveryOtherProblem(t *testing.T) {
	msg := checkConfig(t, `
[server]
public_url = "http://127.0.0.1:8080"
listen = "127.0.0.1:8080"
[session]
secret = "0123456789abcdef0123456789abcdef"
idle_timeout = "forever"
[notifier]
max_attempts = "six"
concurrency = -2
[[apps]]
name = "demo"
issuer = "not a url"
frontend = "http://127.0.0.1:3000"
clinet_id = "demo"
clock_skew = "-5s"
jwks_max_waiters = -3
`, nil)
	wantInOrder(t, msg,
		`session.idle_timeout: `, `"forever"`,
		`notifier.max_attempts: `, `integer`,
		`notifier.concurrency: must be positive`,
		`apps[0].client_id: is required`,
		`apps[0].issuer: must be an absolute http(s) URL`,
		`apps[0].clinet_id: unknown key`,
		`apps[0].clock_skew: must be between 0 and 10m`,
		`apps[0].jwks_max_waiters: must be between 1 and 10000`,
	)
	if n := strings.Count(msg, "\n"); n != 8 {
		t.Errorf("%d lines, want a heading and 8 problems:\n%s", n+1, msg)
	}
}

// TestCheckConfigTypeErrorInArrayOfTables: a wrong type inside the second
// [[apps]] names that entry, and the first entry is still validated.
func TestCheckConfigTypeErrorInArrayOfTables(t *testing.T) {
	msg := checkConfig(t, checkHead+`[[apps]]
name = "one"
issuer = "ftp://idp"
client_id = "one"
frontend = "http://127.0.0.1:3000"
[[apps]]
name = "two"
path_prefix = "/two/"
issuer = "http://idp"
client_id = "two"
frontend = "http://127.0.0.1:3000"
scopes = "openid"
  [[apps.downstream]]
  backchannel_logout_uri = "http://127.0.0.1:4000/logout"
  notify = "always"
  session_required = "yes"
`, nil)
	wantInOrder(t, msg,
		`apps[0].issuer: must be an absolute http(s) URL`,
		`apps[1].scopes: `,
		`apps[1].downstream[0].session_required: `,
	)
}

// TestCheckConfigRefusesValuesThatCannotWork: a typ no receiver accepts,
// require_logout_typ with a logout_typ other than logout+jwt (no token
// could pass both), and an unset secret is one problem, not two.
func TestCheckConfigRefusesValuesThatCannotWork(t *testing.T) {
	msg := checkConfig(t, `
[server]
public_url = "http://127.0.0.1:8080"
[session]
secret = "${UNSET_SECRET}"
[[apps]]
name = "demo"
issuer = "http://127.0.0.1:9000"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
logout_token_typ = "banana"
require_logout_typ = true
logout_typ = "JWT"
[[apps]]
name = "two"
path_prefix = "/two/"
issuer = "http://127.0.0.1:9000"
client_id = "two"
frontend = "http://127.0.0.1:3000"
logout_typ = "application/json"
`, nil)
	wantInOrder(t, msg,
		"session.secret: environment variable UNSET_SECRET is not set",
		`apps[0].logout_token_typ: must be "logout+jwt"`,
		`apps[0].require_logout_typ: `, `"JWT"`,
		`apps[1].logout_typ: must be a JWT media type`,
	)
	if n := strings.Count(msg, "session.secret"); n != 1 {
		t.Errorf("session.secret reported %d times:\n%s", n, msg)
	}
}

// TestCheckConfigAcceptsTypSpellings: the media type spellings of RFC 8725
// §3.11 (application/ optional, any case) and a consistent pair.
func TestCheckConfigAcceptsTypSpellings(t *testing.T) {
	path := writeConfig(t, checkHead+`[[apps]]
name = "demo"
issuer = "http://127.0.0.1:9000"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
logout_token_typ = "application/logout+JWT"
require_logout_typ = true
logout_typ = "Logout+jwt"
[[apps]]
name = "two"
path_prefix = "/two/"
issuer = "http://127.0.0.1:9000"
client_id = "two"
frontend = "http://127.0.0.1:3000"
logout_token_typ = "JWT"
logout_typ = "application/secevent+jwt"
`)
	if _, err := runCheckConfig(t, path, nil); err != nil {
		t.Error(err)
	}
}
