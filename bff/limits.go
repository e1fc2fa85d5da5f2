package bff

import (
	"math"
	"net"
	"net/http"
	"strconv"
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

// trustedForwarding drops X-Forwarded-For, X-Forwarded-Proto and
// X-Request-ID unless the peer is a trusted proxy, so that only a trusted
// load balancer can name the client, say the request came over https or
// give the request its id (and only a well-formed one). The proxies pass
// on what is left.
func trustedForwarding(trusted []string) echo.MiddlewareFunc {
	var nets []*net.IPNet
	for _, cidr := range trusted {
		if _, n, err := net.ParseCIDR(cidr); err == nil {
			nets = append(nets, n)
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.Header.Get(echo.HeaderXForwardedProto) == "" && r.Header.Get(echo.HeaderXForwardedFor) == "" && r.Header.Get(echo.HeaderXRequestID) == "" {
				return next(c)
			}
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			ip := net.ParseIP(host)
			trustedPeer := false
			for _, n := range nets {
				if ip != nil && n.Contains(ip) {
					trustedPeer = true
					break
				}
			}
			if !trustedPeer {
				r.Header.Del(echo.HeaderXForwardedProto)
				r.Header.Del(echo.HeaderXForwardedFor)
			}
			if !trustedPeer || !validRequestID(r.Header.Get(echo.HeaderXRequestID)) {
				r.Header.Del(echo.HeaderXRequestID)
			}
			return next(c)
		}
	}
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
