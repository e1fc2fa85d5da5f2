package upstream

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTransportConfigValidate(t *testing.T) {
	if err := (TransportConfig{}).Validate(); err != nil {
		t.Errorf("zero config: Validate() = %v, want nil", err)
	}
	bad := TransportConfig{
		DialTimeout:           -1,
		ResponseHeaderTimeout: -1,
		IdleConnTimeout:       -1,
		MaxIdleConnsPerHost:   -1,
		MaxConnsPerHost:       -1,
		TLSHandshakeTimeout:   -1,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("negative config: Validate() = nil, want errors")
	}
	for _, key := range []string{
		"dial_timeout: ", "response_header_timeout: ", "idle_conn_timeout: ",
		"max_idle_conns_per_host: ", "max_conns_per_host: ", "tls_handshake_timeout: ",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %q, want a message for %q", err, key)
		}
	}
}

func TestNewTransportDefaults(t *testing.T) {
	tr := NewTransport(TransportConfig{})
	if got, want := tr.ResponseHeaderTimeout, DefaultResponseHeaderTimeout; got != want {
		t.Errorf("ResponseHeaderTimeout = %v, want %v", got, want)
	}
	if got, want := tr.IdleConnTimeout, DefaultIdleConnTimeout; got != want {
		t.Errorf("IdleConnTimeout = %v, want %v", got, want)
	}
	if got, want := tr.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout; got != want {
		t.Errorf("TLSHandshakeTimeout = %v, want %v", got, want)
	}
	if got, want := tr.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost; got != want {
		t.Errorf("MaxIdleConnsPerHost = %v, want %v", got, want)
	}
	if got := tr.MaxConnsPerHost; got != 0 {
		t.Errorf("MaxConnsPerHost = %v, want 0 (unlimited)", got)
	}
	if tr.DisableKeepAlives {
		t.Error("DisableKeepAlives = true, want keep-alives on")
	}
	if !tr.ForceAttemptHTTP2 {
		t.Error("ForceAttemptHTTP2 = false, want true")
	}
}

func TestNewTransportSettings(t *testing.T) {
	tr := NewTransport(TransportConfig{
		ResponseHeaderTimeout: 2 * time.Second,
		MaxIdleConnsPerHost:   7,
		MaxConnsPerHost:       9,
	})
	if tr.ResponseHeaderTimeout != 2*time.Second || tr.MaxIdleConnsPerHost != 7 || tr.MaxConnsPerHost != 9 {
		t.Errorf("transport = {%v, %d, %d}, want {2s, 7, 9}",
			tr.ResponseHeaderTimeout, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost)
	}
}

func TestNewTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	tr := NewTransport(TransportConfig{})
	if tr.Proxy != nil {
		req := &http.Request{URL: &url.URL{Scheme: "http", Host: "api.example.com"}}
		u, _ := tr.Proxy(req)
		t.Errorf("transport proxies via %v, want no proxy", u)
	}
}
