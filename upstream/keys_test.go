package upstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKeyPEM writes key to a temporary PEM file as a block of type
// "PRIVATE KEY" (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or "EC PRIVATE KEY"
// (SEC 1), and returns its path.
func writeKeyPEM(t *testing.T, key crypto.Signer, blockType string) string {
	t.Helper()
	var (
		der []byte
		err error
	)
	switch blockType {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		t.Fatalf("writeKeyPEM: unknown block type %q", blockType)
	}
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return writeFile(t, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}))
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSigningKey(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	ecKey, _ := x509.MarshalECPrivateKey(testECKey())
	withParams := append(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecKey})...)

	tests := []struct {
		name    string
		path    func(t *testing.T) string
		wantAlg string // empty: an error containing wantErr
		wantErr string
	}{
		{name: "RSA PKCS#8", path: func(t *testing.T) string { return writeKeyPEM(t, testRSAKey(), "PRIVATE KEY") }, wantAlg: "RS256"},
		{name: "RSA PKCS#1", path: func(t *testing.T) string { return writeKeyPEM(t, testRSAKey(), "RSA PRIVATE KEY") }, wantAlg: "RS256"},
		{name: "EC PKCS#8", path: func(t *testing.T) string { return writeKeyPEM(t, testECKey(), "PRIVATE KEY") }, wantAlg: "ES256"},
		{name: "EC SEC 1", path: func(t *testing.T) string { return writeKeyPEM(t, testECKey(), "EC PRIVATE KEY") }, wantAlg: "ES256"},
		{name: "EC after EC PARAMETERS", path: func(t *testing.T) string { return writeFile(t, withParams) }, wantAlg: "ES256"},
		{name: "RSA 1024", path: func(t *testing.T) string { return writeKeyPEM(t, mustRSA(1024), "RSA PRIVATE KEY") },
			wantErr: "RSA key has 1024 bits, want at least 2048"},
		{name: "EC P-384", path: func(t *testing.T) string { return writeKeyPEM(t, mustEC(elliptic.P384()), "EC PRIVATE KEY") },
			wantErr: "want P-256"},
		{name: "Ed25519", path: func(t *testing.T) string { return writeKeyPEM(t, edKey, "PRIVATE KEY") },
			wantErr: "unsupported key type"},
		{name: "not PEM", path: func(t *testing.T) string { return writeFile(t, []byte("not a key")) },
			wantErr: "no PEM private key found"},
		{name: "only a certificate", path: func(t *testing.T) string {
			return writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
		}, wantErr: "no PEM private key found"},
		{name: "corrupt key", path: func(t *testing.T) string {
			return writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
		}, wantErr: "parse RSA PRIVATE KEY"},
		{name: "missing file", path: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.pem") },
			wantErr: "read key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := LoadSigningKey(tt.path(t))
			if tt.wantAlg == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadSigningKey() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadSigningKey() error = %v, want nil", err)
			}
			if got, _ := keyAlgorithm(key); string(got) != tt.wantAlg {
				t.Errorf("algorithm = %q, want %q", got, tt.wantAlg)
			}
		})
	}
}

func TestNewSignerKeyFileErrors(t *testing.T) {
	bad := writeFile(t, []byte("garbage"))
	tests := []struct {
		name    string
		cfg     SignerConfig
		wantErr string
	}{
		{name: "bad key_file", cfg: SignerConfig{KeyFile: bad}, wantErr: "no PEM private key found"},
		{name: "bad previous key", cfg: SignerConfig{PreviousKeyFiles: []string{bad}}, wantErr: "previous_key_files[0]: "},
		{name: "weak key_file", cfg: SignerConfig{KeyFile: writeKeyPEM(t, mustRSA(1024), "PRIVATE KEY")}, wantErr: "at least 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Issuer = "https://gw.example.com"
			_, err := NewSigner(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewSigner() error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadPrivateKeyOpenSSLECParams reads a file written by `openssl
// ecparam -genkey -name prime256v1` (EC PARAMETERS, then EC PRIVATE KEY).
func TestLoadPrivateKeyOpenSSLECParams(t *testing.T) {
	key, err := LoadPrivateKey("testdata/ec-params-first.pem")
	if err != nil {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("LoadPrivateKey = %T, want *ecdsa.PrivateKey", key)
	}
}
