package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCheckConfigJWKSLimits: -check-config refuses JWKS wait limits out of
// their ranges, each named by its key.
func TestCheckConfigJWKSLimits(t *testing.T) {
	path := writeConfig(t, `
[server]
public_url = "https://gw.example"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[apps]]
name = "demo"
issuer = "https://idp.example"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
jwks_refetch_interval = "10ms"
jwks_refetch_wait = "1m"
jwks_max_waiters = -1
`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bffgate", "-config", path, "-check-config"}, env(nil), &stdout, &stderr)
	if err == nil {
		t.Fatal("run accepted JWKS limits out of range")
	}
	for _, want := range []string{
		"apps[0].jwks_refetch_interval: must be between 1s and 1h",
		"apps[0].jwks_refetch_wait: must be between 0 and 10s",
		"apps[0].jwks_max_waiters: must be between 1 and 10000",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
