package bff

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"
)

// ipExtractor decides the client address: X-Forwarded-For is believed
// only from the trusted proxies, else the peer address is used.
func ipExtractor(trusted []string) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, cidr := range trusted {
		_, n, err := net.ParseCIDR(cidr)
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// trustedForwarding removes the headers by which a client could name
// another address, scheme, host or path (X-Forwarded-*, Forwarded,
// X-Real-IP, X-Original-URL, X-Rewrite-URL and the like) and X-Request-ID
// unless the peer is a trusted proxy, so that only a trusted load
// balancer can name the client, say the request came over https or give
// the request its id (and only a well-formed one). Spellings with "_"
// for "-", which CGI-style servers read as the same header, go whatever
// the peer. From a trusted proxy, X-Forwarded-For is rebuilt as one line
// of the addresses it lists (an empty line or element is no hop). The
// proxies pass on what is left.
func trustedForwarding(trusted []string) echo.MiddlewareFunc {
	var nets []netip.Prefix
	for _, cidr := range trusted {
		if n, err := netip.ParsePrefix(cidr); err == nil {
			nets = append(nets, n.Masked())
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			found := false
			for k := range r.Header {
				if k == echo.HeaderXRequestID || forwardingHeader(k) {
					found = true
					break
				}
			}
			if !found {
				return next(c)
			}
			trustedPeer := false
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
				for _, n := range nets {
					if n.Contains(ap.Addr().Unmap()) {
						trustedPeer = true
						break
					}
				}
			}
			for k := range r.Header {
				if forwardingHeader(k) && (!trustedPeer || strings.ContainsRune(k, '_')) {
					delete(r.Header, k)
				}
			}
			if xff := r.Header[echo.HeaderXForwardedFor]; trustedPeer && len(xff) > 0 {
				switch chain, ok := addressChain(xff); {
				case chain == "":
					delete(r.Header, echo.HeaderXForwardedFor)
				case !ok:
					r.Header[echo.HeaderXForwardedFor] = []string{chain}
				}
			}
			if !trustedPeer || !validRequestID(r.Header.Get(echo.HeaderXRequestID)) {
				r.Header.Del(echo.HeaderXRequestID)
			}
			return next(c)
		}
	}
}

// forwardingPrefixes and forwardingNames are the headers (lower case)
// that trustedForwarding removes from untrusted peers.
var (
	forwardingPrefixes = []string{"x-forwarded-", "x-original-"}
	forwardingNames    = []string{
		"forwarded", "x-real-ip", "x-rewrite-url", "x-host", "x-client-ip", "client-ip",
		"true-client-ip", "x-cluster-client-ip", "x-originating-ip", "cf-connecting-ip",
		"fastly-client-ip", "x-proxyuser-ip", "x-url-scheme", "front-end-https",
	}
)

// forwardingHeader reports whether the header key is one a proxy sets to
// describe the client's request, ignoring case and reading "_" as "-".
func forwardingHeader(k string) bool {
	for _, p := range forwardingPrefixes {
		if len(k) > len(p) && headerEqual(k[:len(p)], p) {
			return true
		}
	}
	for _, n := range forwardingNames {
		if headerEqual(k, n) {
			return true
		}
	}
	return false
}

// headerEqual compares a header key with a lower-case name, ignoring
// case and reading "_" as "-".
func headerEqual(k, lower string) bool {
	if len(k) != len(lower) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// addressChain joins the addresses in X-Forwarded-For lines (trimmed,
// ports and brackets dropped, empty or unparsable elements skipped) into
// one line. ok reports that lines already is that one line.
func addressChain(lines []string) (chain string, ok bool) {
	if len(lines) == 1 && canonicalChain(lines[0]) {
		return lines[0], true
	}
	var b strings.Builder
	for _, line := range lines {
		for hop := range strings.SplitSeq(line, ",") {
			addr, good := parseHop(hop)
			if !good {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(addr.String())
		}
	}
	return b.String(), false
}

// canonicalChain reports whether line is "a, b, c" of bare addresses.
func canonicalChain(line string) bool {
	for hop := range strings.SplitSeq(line, ", ") {
		if _, err := netip.ParseAddr(hop); err != nil {
			return false
		}
	}
	return true
}

// parseHop parses one X-Forwarded-For element: an address, with or
// without a port or brackets.
func parseHop(hop string) (netip.Addr, bool) {
	hop = strings.TrimSpace(hop)
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(hop, "["), "]")); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

// rateLimit is a per-client-IP token bucket that answers 429 with
// Retry-After.
func rateLimit(l Limit) echo.MiddlewareFunc {
	if l.Off {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	retryAfter := strconv.Itoa(int(math.Ceil(1 / l.Rate)))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(l.Rate), Burst: l.Burst, ExpiresIn: 3 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retryAfter)
			return jsonError(http.StatusTooManyRequests, "rate_limited", "too many requests; retry later", nil)
		},
		ErrorHandler: func(c echo.Context, err error) error {
			return jsonError(http.StatusForbidden, "forbidden", "client address unknown", err)
		},
	})
}
