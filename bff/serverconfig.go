package bff

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// ServerConfig is the gateway-wide part of the configuration ([server]).
type ServerConfig struct {
	// Listen is the gateway's address. Default "127.0.0.1:8080".
	Listen string `toml:"listen"`
	// PublicURL is the gateway's external origin (scheme://host[:port]),
	// used to build redirect and logout URIs. Required.
	PublicURL string `toml:"public_url"`
	// AdminListen is the admin listener's address (health, metrics, admin
	// API). Empty disables the admin listener.
	AdminListen string `toml:"admin_listen"`
	// AdminToken guards the admin API; empty turns the admin API off.
	AdminToken string `toml:"admin_token"`
	// ShutdownTimeout bounds the whole shutdown after SIGTERM, split in
	// phases (HTTP drain, notifications, revocations, store; see
	// cmd/bffgate/shutdown.go). Default 15s.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// LogFormat is "json" (default) or "text".
	LogFormat string `toml:"log_format"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `toml:"log_level"`
	// AccessLog logs one line per request (at info). Default off: the
	// request metrics carry the same counts, and the line costs several
	// percent of throughput.
	AccessLog bool `toml:"access_log"`

	// TLSCert and TLSKey are PEM files: with both set the gateway serves
	// HTTPS itself (HTTP/2 on); renewed files are picked up without a
	// restart.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TrustedProxies are CIDRs of load balancers whose X-Forwarded-For and
	// X-Forwarded-Proto headers are believed. Empty: none.
	TrustedProxies []string `toml:"trusted_proxies"`
	// MaxHeaderBytes caps request headers. Default 64 KiB.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxBodyBytes caps proxied request bodies. Default 10 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// RateLimits are per-client-IP limits on the sign-in and logout
	// endpoints.
	RateLimits RateLimits `toml:"rate_limits"`
	// ConnLimits: connections, request bodies, event streams
	// (connlimits.go); its keys are [server]'s own.
	ConnLimits
}

// RateLimits are per-client-IP token buckets, in requests per second with
// a burst.
type RateLimits struct {
	Login        Limit `toml:"login"`        // /bff/login and /bff/callback
	Backchannel  Limit `toml:"backchannel"`  // /bff/backchannel-logout
	Frontchannel Limit `toml:"frontchannel"` // /bff/frontchannel-logout
}

// Limit is one token bucket.
type Limit struct {
	Rate  float64 `toml:"rate"`
	Burst int     `toml:"burst"`
	// Off turns the limit off.
	Off bool `toml:"off"`
}

// Defaults fills in the zero values of c.
func (c *ServerConfig) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 10 << 20
	}
	limitDefault(&c.RateLimits.Login, Limit{Rate: 10, Burst: 50})
	// An IdP sends one back-channel request per session end, all from one
	// address: allow it far more.
	limitDefault(&c.RateLimits.Backchannel, Limit{Rate: 500, Burst: 1000})
	limitDefault(&c.RateLimits.Frontchannel, Limit{Rate: 20, Burst: 50})
	c.ConnLimits.defaults()
}

func limitDefault(l *Limit, def Limit) {
	if *l == (Limit{}) {
		*l = def
	}
}

// Validate reports every problem, each prefixed with its key.
func (c *ServerConfig) Validate() error {
	var errs []error
	if c.PublicURL == "" {
		errs = append(errs, errors.New("public_url: is required"))
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("public_url: must be an absolute http(s) origin without path, e.g. https://app.example.com"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: is required"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown_timeout: must not be negative"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log_format: must be \"json\" or \"text\", not %q", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: must be debug, info, warn or error, not %q", c.LogLevel))
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("admin_token: must be at least 16 characters"))
	}
	if c.AdminToken != "" && c.AdminListen == "" {
		errs = append(errs, errors.New("admin_token: needs admin_listen"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert: tls_cert and tls_key go together"))
	}
	for i, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not a CIDR such as 10.0.0.0/8", i, cidr))
		}
	}
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("max_header_bytes: must be at least 4096"))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("max_body_bytes: must not be negative"))
	}
	for key, l := range map[string]Limit{"login": c.RateLimits.Login, "backchannel": c.RateLimits.Backchannel, "frontchannel": c.RateLimits.Frontchannel} {
		if !l.Off && (l.Rate <= 0 || l.Burst <= 0) {
			errs = append(errs, fmt.Errorf("rate_limits.%s: rate and burst must be positive (off = true turns the limit off)", key))
		}
	}
	errs = append(errs, c.ConnLimits.validate()...)
	return errors.Join(errs...)
}
