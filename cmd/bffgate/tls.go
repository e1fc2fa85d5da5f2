package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves a certificate from files and picks up renewed files
// without a restart: it looks at their modification times at most every
// checkEvery, and keeps the last good pair if a reload fails.
type certReloader struct {
	certFile, keyFile string
	checkEvery        time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

// certCheckEvery is how often the certificate files are looked at.
var certCheckEvery = 5 * time.Second

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, checkEvery: certCheckEvery}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load tls_cert/tls_key: %w", err)
	}
	r.cert = &cert
	r.modTime = r.newestModTime()
	return nil
}

func (r *certReloader) newestModTime() time.Time {
	var newest time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest
}

// use switches to the files of a reload and their pair, already loaded.
func (r *certReloader) use(certFile, keyFile string, cert *tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.certFile, r.keyFile, r.cert = certFile, keyFile, cert
	r.modTime, r.checked = r.newestModTime(), time.Now()
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.checkEvery {
		r.checked = now
		if mt := r.newestModTime(); mt.After(r.modTime) {
			_ = r.load() // on failure the last good pair stays

		}
	}
	return r.cert, nil
}

// tlsConfig is the gateway's server TLS: TLS 1.2+ with AEAD ECDHE suites
// only, HTTP/2 and HTTP/1.1.
func tlsConfig(r *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
	}
}
