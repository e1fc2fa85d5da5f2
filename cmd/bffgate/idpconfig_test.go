package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestIdPKeysAreChecked: -check-config validates the per-app keys of
// issue 13 (cookies, refresh_margin, userinfo), each with its key path.
func TestIdPKeysAreChecked(t *testing.T) {
	path := writeConfig(t, `
[server]
public_url = "http://127.0.0.1:8080"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[apps]]
name = "demo"
issuer = "http://127.0.0.1:9000"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
refresh_margin = "500ms"
  [[apps.apis]]
  path = "/api/"
  upstream = "http://127.0.0.1:4000"
  cookies = ["theme", "a b", "__Host-bffgate-demo"]
`)
	err := run(context.Background(), []string{"bffgate", "-config", path, "-check-config"}, env(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("run accepted a broken config")
	}
	for _, want := range []string{
		`apps[0].apis[0].cookies[1]: "a b" is not a cookie name`,
		"apps[0].refresh_margin: must be between 1s and 1h",
		`apps[0].apis[0].cookies[2]: "__Host-bffgate-demo" is the gateway's own cookie`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "cookies[0]") {
		t.Errorf("a valid cookie name was refused:\n%v", err)
	}
}
