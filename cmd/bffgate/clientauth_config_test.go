package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// ecKeyFile writes a P-256 private key in PKCS#8 PEM and returns its path.
func ecKeyFile(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "assertion.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckConfigClientAuth: -check-config names each client
// authentication problem by its key; a usable setting passes.
func TestCheckConfigClientAuth(t *testing.T) {
	keyFile := ecKeyFile(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	tests := []struct {
		name  string
		lines string
		want  []string // "" entries: none, the config is valid
	}{
		{"bad method", `token_endpoint_auth_method = "client_secret_jwt"`,
			[]string{`apps[0].token_endpoint_auth_method: unknown method "client_secret_jwt"`}},
		{"private_key_jwt without a key", `token_endpoint_auth_method = "private_key_jwt"`,
			[]string{"apps[0].token_endpoint_auth_method: private_key_jwt needs client_assertion_key_file"}},
		{"a secret method without a secret", `token_endpoint_auth_method = "client_secret_post"`,
			[]string{"apps[0].token_endpoint_auth_method: client_secret_post needs client_secret"}},
		{"unreadable key file", `client_assertion_key_file = "` + missing + `"`,
			[]string{"apps[0].client_assertion_key_file: read key: open " + missing}},
		{"not a key", `client_assertion_key_file = "` + os.Args[0] + `"`,
			[]string{"apps[0].client_assertion_key_file: key file " + os.Args[0]}},
		{"alg of another key type", "client_assertion_key_file = \"" + keyFile + "\"\nclient_assertion_alg = \"RS256\"",
			[]string{"apps[0].client_assertion_key_file: key file " + keyFile + ": alg RS256 does not fit"}},
		{"kid without a key", `client_assertion_kid = "k1"`,
			[]string{"apps[0].client_assertion_kid, client_assertion_alg: need client_assertion_key_file"}},
		{"private_key_jwt with a key", "token_endpoint_auth_method = \"private_key_jwt\"\nclient_assertion_key_file = \"" + keyFile + "\"\nclient_assertion_kid = \"k1\"", nil},
		{"client_secret_post", "client_secret = \"s\"\ntoken_endpoint_auth_method = \"client_secret_post\"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testConfig{scheme: "https", app: tt.lines}.write(t)
			if len(tt.want) == 0 {
				if _, err := runCheckConfig(t, path, nil); err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			wantProblems(t, path, tt.want...)
		})
	}
}
