package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The image's ENTRYPOINT and HEALTHCHECK are exec form (no shell in
// distroless), so both find the config through BFFGATE_CONFIG, never
// through a path written twice.
func TestConfigPathFromEnv(t *testing.T) {
	shipped, err := filepath.Abs("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"BFFGATE_CONFIG":         shipped,
		"BFFGATE_SESSION_SECRET": strings.Repeat("x", 32),
		"DEMO_CLIENT_SECRET":     "demo-secret",
		"BFFGATE_ADMIN_TOKEN":    "admin-token-0123456789",
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bffgate", "-check-config"}, env(vars), &stdout, &stderr); err != nil {
		t.Fatalf("-check-config with BFFGATE_CONFIG=%s: %v", shipped, err)
	}
	if want := "config " + shipped + " is valid"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}

	// -config still wins over the variable.
	vars["BFFGATE_CONFIG"] = filepath.Join(t.TempDir(), "missing.toml")
	stdout.Reset()
	if err := run(context.Background(), []string{"bffgate", "-config", shipped, "-check-config"}, env(vars), &stdout, &stderr); err != nil {
		t.Fatalf("-config with a wrong BFFGATE_CONFIG: %v", err)
	}
}
