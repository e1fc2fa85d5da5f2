package upstream

import (
	"cmp"
	"errors"
	"net"
	"net/http"
	"time"
)

// Defaults for the zero fields of TransportConfig.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 64
	DefaultTLSHandshakeTimeout   = 5 * time.Second
)

// TransportConfig tunes the HTTP transport to the upstreams. Every zero
// field takes its documented default; negative values are invalid.
type TransportConfig struct {
	// DialTimeout bounds establishing a TCP connection. Default 5s.
	DialTimeout time.Duration `toml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers after the request is written (the proxy answers 504 when it
	// passes). It does not limit streaming bodies such as SSE. Default 30s.
	ResponseHeaderTimeout time.Duration `toml:"response_header_timeout"`
	// IdleConnTimeout closes keep-alive connections idle this long.
	// Default 90s.
	IdleConnTimeout time.Duration `toml:"idle_conn_timeout"`
	// MaxIdleConnsPerHost is how many keep-alive connections are kept per
	// upstream host. Default 64.
	MaxIdleConnsPerHost int `toml:"max_idle_conns_per_host"`
	// MaxConnsPerHost limits connections per upstream host, dialing,
	// active and idle. 0 means unlimited.
	MaxConnsPerHost int `toml:"max_conns_per_host"`
	// TLSHandshakeTimeout bounds the TLS handshake. Default 5s.
	TLSHandshakeTimeout time.Duration `toml:"tls_handshake_timeout"`
}

// Validate reports every invalid field at once, each prefixed with its
// TOML key.
func (c TransportConfig) Validate() error {
	var errs []error
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"dial_timeout", c.DialTimeout},
		{"response_header_timeout", c.ResponseHeaderTimeout},
		{"idle_conn_timeout", c.IdleConnTimeout},
		{"tls_handshake_timeout", c.TLSHandshakeTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, errors.New(d.key+": must be positive (or 0 for the default)"))
		}
	}
	if c.MaxIdleConnsPerHost < 0 {
		errs = append(errs, errors.New("max_idle_conns_per_host: must be positive (or 0 for the default)"))
	}
	if c.MaxConnsPerHost < 0 {
		errs = append(errs, errors.New("max_conns_per_host: must not be negative (0 means unlimited)"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero (or invalid, negative) field set
// to its default.
func (c TransportConfig) withDefaults() TransportConfig {
	c.DialTimeout = cmp.Or(max(c.DialTimeout, 0), DefaultDialTimeout)
	c.ResponseHeaderTimeout = cmp.Or(max(c.ResponseHeaderTimeout, 0), DefaultResponseHeaderTimeout)
	c.IdleConnTimeout = cmp.Or(max(c.IdleConnTimeout, 0), DefaultIdleConnTimeout)
	c.TLSHandshakeTimeout = cmp.Or(max(c.TLSHandshakeTimeout, 0), DefaultTLSHandshakeTimeout)
	c.MaxIdleConnsPerHost = cmp.Or(max(c.MaxIdleConnsPerHost, 0), DefaultMaxIdleConnsPerHost)
	c.MaxConnsPerHost = max(c.MaxConnsPerHost, 0)
	return c
}

// NewTransport returns the transport the gateway uses for its upstreams,
// with cfg's defaults applied (call Validate first; invalid values are
// treated as zero).
//
// Keep-alives are on, and HTTP/2 is attempted for https upstreams
// (requests that upgrade, such as WebSockets, still use HTTP/1.1).
//
// Proxy settings from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)
// are deliberately ignored: a gateway that forwards users' access tokens
// must not start sending them through a proxy because of a variable in
// its environment. The transport never decompresses responses either, so
// bodies and their Content-Encoding pass through to the client untouched.
func NewTransport(cfg TransportConfig) *http.Transport {
	cfg = cfg.withDefaults()
	dialer := &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
	}
	return &http.Transport{
		Proxy:                 nil, // see the doc comment
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.TLSHandshakeTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		MaxIdleConns:          0, // no global limit; bounded per host
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		DisableCompression:    true,
	}
}
