package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns it.
func writeCert(t *testing.T, certFile, keyFile, cn string, modTime time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	os.Chtimes(certFile, modTime, modTime)
	os.Chtimes(keyFile, modTime, modTime)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// tlsGateway is a running gateway that serves HTTPS with a certificate
// of its own files.
type tlsGateway struct {
	cert              *x509.Certificate
	certFile, keyFile string
	listen, admin     string
}

// startTLSGateway runs a gateway serving HTTPS with a certificate for
// 127.0.0.1 named cn, with serverExtra lines more in [server].
func startTLSGateway(t *testing.T, cn, serverExtra string) tlsGateway {
	t.Helper()
	dir := t.TempDir()
	g := tlsGateway{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), listen: freePort(t), admin: freePort(t)}
	g.cert = writeCert(t, g.certFile, g.keyFile, cn, time.Now().Add(-time.Minute))
	op := testop.New(t, testop.Config{})
	path := gatewayConfig(t, op, "https", g.listen, g.admin, fmt.Sprintf("tls_cert = %q\ntls_key = %q\n%s", g.certFile, g.keyFile, serverExtra))
	startRun(t, path, g.admin, io.Discard)
	return g
}

func TestTLSServingAndCertificateReload(t *testing.T) {
	old := certCheckEvery
	certCheckEvery = 10 * time.Millisecond
	defer func() { certCheckEvery = old }()

	g := startTLSGateway(t, "first", "")
	first, listen, certFile, keyFile := g.cert, g.listen, g.certFile, g.keyFile

	get := func(want *x509.Certificate) *http.Response {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AddCert(want)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
		resp, err := client.Get("https://" + listen + "/bff/user")
		if err != nil {
			t.Fatalf("https request trusting %s: %v", want.Subject.CommonName, err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get(first)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %s %d, want HTTP/2 and 401 without a session", resp.Proto, resp.StatusCode)
	}
	if ck := resp.TLS; ck == nil || ck.Version < tls.VersionTLS12 {
		t.Errorf("TLS version too old or missing")
	}

	// A renewed certificate is served without a restart.
	second := writeCert(t, certFile, keyFile, "second", time.Now())
	if err := proctest.Eventually(5*time.Second, 20*time.Millisecond, func() error {
		pool := x509.NewCertPool()
		pool.AddCert(second)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://" + listen + "/bff/user")
		if err != nil {
			return errors.New("the renewed certificate was never served")
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Old TLS versions are refused.
	pool := x509.NewCertPool()
	pool.AddCert(second)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := c.Get("https://" + listen + "/"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}
}

func TestHealthcheckFlag(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	path := gatewayConfig(t, op, "http", listen, admin, "access_log = true")
	healthcheck := func() error {
		return run(context.Background(), []string{"bffgate", "-config", path, "-healthcheck"}, env(nil), io.Discard, io.Discard)
	}
	if err := healthcheck(); err == nil {
		t.Fatal("-healthcheck succeeded with no gateway running")
	}
	logw := &proctest.Buffer{}
	startRun(t, path, admin, logw)
	if err := healthcheck(); err != nil {
		t.Errorf("-healthcheck against a running gateway: %v", err)
	}

	// Every log line of a request carries its request id.
	resp, err := http.Post("http://"+listen+"/bff/backchannel-logout", "application/x-www-form-urlencoded", strings.NewReader("logout_token=a.b.c"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	// Logs are flushed every 100ms: wait for the lines.
	lines := 0
	_ = proctest.Eventually(3*time.Second, 20*time.Millisecond, func() error {
		lines = 0
		for _, l := range strings.Split(logw.String(), "\n") {
			if strings.Contains(l, `"request_id":"`+rid+`"`) {
				lines++
			}
		}
		if lines < 3 {
			return errNotYet
		}
		return nil
	})
	if rid == "" || lines < 3 {
		t.Errorf("request %q: %d log lines carry its id, want the rejection, the failure and the access line", rid, lines)
	}
}
