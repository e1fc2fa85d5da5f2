package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// ecParamsFirst is the output of `openssl ecparam -genkey -name
// prime256v1`: an "EC PARAMETERS" block before the "EC PRIVATE KEY".
const ecParamsFirst = "../../upstream/testdata/ec-params-first.pem"

// TestDecryptionKeyFromOpenSSLECParams: id_token_decryption_key_file takes
// the same PEM files as signing.key_file, including OpenSSL's EC
// PARAMETERS-first output.
func TestDecryptionKeyFromOpenSSLECParams(t *testing.T) {
	keyFile, err := filepath.Abs(ecParamsFirst) // a relative one would be next to the config
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatal(err)
	}
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	path := testConfig{op: op, listen: listen, admin: admin, app: `id_token_decryption_key_file = "` + keyFile + `"`}.write(t)
	startRun(t, path, admin, io.Discard)
}

// TestDecryptionKeyFileErrorsAtLoad: a decryption key file that is not a
// usable key is a config error with its key path, found before start.
func TestDecryptionKeyFileErrorsAtLoad(t *testing.T) {
	op := testop.New(t, testop.Config{})
	notKey := writeConfig(t, "not a key")
	path := testConfig{op: op, listen: freePort(t), admin: freePort(t), app: `id_token_decryption_key_file = "` + notKey + `"`}.write(t)
	_, err := loadConfig(path, env(nil))
	if err == nil || !strings.Contains(err.Error(), "apps[0].id_token_decryption_key_file:") {
		t.Errorf("loadConfig error = %v, want one naming apps[0].id_token_decryption_key_file", err)
	}
}
