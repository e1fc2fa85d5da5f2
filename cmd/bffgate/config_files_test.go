package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
)

// writeECKey writes a new PKCS#8 EC private key to path.
func writeECKey(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckConfigOpensEveryFile: -check-config opens and parses each file
// the config names, and reports each one that the start would fail on.
func TestCheckConfigOpensEveryFile(t *testing.T) {
	notAKey := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notAKey, []byte("not a key\n"), 0o600)
	msg := checkConfig(t, fmt.Sprintf(`
[server]
public_url = "https://127.0.0.1:8443"
tls_cert = "missing-cert.pem"
tls_key = "missing-key.pem"
[session]
secret = "0123456789abcdef0123456789abcdef"
[signing]
key_file = "missing-signing.pem"
previous_key_files = [%q]
[[apps]]
name = "demo"
issuer = "http://127.0.0.1:9000"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
id_token_decryption_key_file = "missing-decryption.pem"
`, notAKey), nil)
	wantInOrder(t, msg,
		"server.tls_cert: ", "missing-cert.pem",
		"signing.key_file: ", "missing-signing.pem",
		"signing.previous_key_files[0]: ",
		"apps[0].id_token_decryption_key_file: ", "missing-decryption.pem",
	)
}

// TestConfigRelativePathsFromItsFolder: a relative file name in the config
// is found next to the config file, whatever the working directory, for
// the check and for the real start (both use the loaded config).
func TestConfigRelativePathsFromItsFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCert(t, filepath.Join(dir, "keys", "tls.crt"), filepath.Join(dir, "keys", "tls.key"), "relative", time.Now())
	writeECKey(t, filepath.Join(dir, "keys", "signing.pem"))
	writeECKey(t, filepath.Join(dir, "keys", "old.pem"))
	writeECKey(t, filepath.Join(dir, "keys", "decryption.pem"))

	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	body, err := os.ReadFile(gatewayConfig(t, op, "https", listen, admin, `tls_cert = "keys/tls.crt"
tls_key = "./keys/tls.key"`))
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, `id_token_decryption_key_file = "keys/decryption.pem"
[signing]
key_file = "keys/signing.pem"
previous_key_files = ["keys/old.pem"]
`...)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := loadConfig(path, env(nil))
	if err != nil {
		t.Fatalf("relative paths next to the config: %v", err)
	}
	for key, got := range map[string]string{
		"tls_cert":                     cfg.Server.TLSCert,
		"tls_key":                      cfg.Server.TLSKey,
		"key_file":                     cfg.Signing.KeyFile,
		"previous_key_files[0]":        cfg.Signing.PreviousKeyFiles[0],
		"id_token_decryption_key_file": cfg.Apps[0].DecryptionKeyFile,
	} {
		if !filepath.IsAbs(got) || !isUnder(got, dir) {
			t.Errorf("%s = %q, want a path under %s", key, got, dir)
		}
	}
	startRun(t, path, admin, io.Discard) // the working directory is the package's

	// A key file another section adds (private_key_jwt) is found the same way.
	writeECKey(t, filepath.Join(dir, "keys", "assertion.pem"))
	body = bytes.Replace(body, []byte("[signing]"), []byte("client_assertion_key_file = \"keys/assertion.pem\"\n[signing]"), 1)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = loadConfig(path, env(nil)); err != nil {
		t.Fatalf("relative client_assertion_key_file: %v", err)
	}
	if got := cfg.Apps[0].ClientAssertionKeyFile; !isUnder(got, dir) {
		t.Errorf("client_assertion_key_file = %q, want a path under %s", got, dir)
	}
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}
