package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/upstream"
)

// Files named in the config: a relative name is resolved against the
// config file's folder (for -check-config and for the start alike, both
// use the loaded config), and -check-config opens and parses each one.

// isFileKey reports whether the TOML key names a file (or files): any key
// ending in _file or _files, and [server] tls_cert and tls_key.
func isFileKey(key string) bool {
	return strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_files") || key == "tls_cert" || key == "tls_key"
}

// resolvePaths makes every relative file name in cfg relative to dir.
func resolvePaths(cfg *fileConfig, dir string) {
	eachString(reflect.ValueOf(cfg).Elem(), "", "", func(_, key string, v reflect.Value) {
		if s := v.String(); isFileKey(key) && s != "" && !filepath.IsAbs(s) {
			v.SetString(filepath.Join(dir, s))
		}
	})
}

// loadedElsewhere are the file keys that their own loaders parse
// (validateSigning, loadDecryptionKeys, loadAssertionKeys, checkTLSFiles).
var loadedElsewhere = map[string]bool{
	"tls_cert": true, "tls_key": true,
	"id_token_decryption_key_file": true, "client_assertion_key_file": true,
}

// checkFiles opens and parses the files that no other check loads: the
// TLS pair, and any other *_file key (a private key when its name says
// key, else any readable file).
func (c *fileConfig) checkFiles() error {
	var errs []error
	errs = append(errs, bff.PrefixErrors("server.", checkTLSFiles(c.Server.TLSCert, c.Server.TLSKey)))
	eachString(reflect.ValueOf(c).Elem(), "", "", func(path, key string, v reflect.Value) {
		f := v.String()
		switch {
		case f == "" || !isFileKey(key) || loadedElsewhere[key] || strings.HasPrefix(path, "signing."):
		case strings.Contains(key, "key_file"):
			if _, err := upstream.LoadPrivateKey(f); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		default:
			if _, err := os.ReadFile(f); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		}
	})
	return errors.Join(errs...)
}

// checkTLSFiles reads the certificate and key files and checks that they
// are a pair, as the start does.
func checkTLSFiles(certFile, keyFile string) error {
	if certFile == "" || keyFile == "" {
		return nil // Validate reports a lone one
	}
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	if certErr != nil || keyErr != nil {
		var errs []error
		if certErr != nil {
			errs = append(errs, fmt.Errorf("tls_cert: %w", certErr))
		}
		if keyErr != nil {
			errs = append(errs, fmt.Errorf("tls_key: %w", keyErr))
		}
		return errors.Join(errs...)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("tls_cert: %s and tls_key %s are not a certificate and its key: %w", certFile, keyFile, err)
	}
	return nil
}

// eachString calls fn with every settable string in v (fields with a toml
// key, slices, embedded structs), its key path and its own TOML key (a
// slice element's is the slice's).
func eachString(v reflect.Value, path, key string, fn func(path, key string, v reflect.Value)) {
	switch v.Kind() {
	case reflect.String:
		fn(path, key, v)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous && k == "":
				eachString(v.Field(i), path, key, fn) // embedded: its keys sit in this table
			case !f.IsExported() || k == "" || k == "-":
			default:
				eachString(v.Field(i), joinKey(path, k), k, fn)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			eachString(v.Index(i), fmt.Sprintf("%s[%d]", path, i), key, fn)
		}
	}
}
