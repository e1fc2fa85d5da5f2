package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// ErrSessionEnded means the session cannot be used any more: its access
// token expired and could not be refreshed, so it was ended. The proxy
// answers 401 and the SPA signs in again.
var ErrSessionEnded = errors.New("session ended")

// The error codes (the "error" of the gateway's JSON error body) and
// descriptions the proxy answers with.
const (
	codeUnauthorized    = "unauthorized"
	codeBadGateway      = "bad_gateway"
	codeUpstreamTimeout = "upstream_timeout"
	// codeTokenUnavailable: the IdP could not be reached for a client token.
	codeTokenUnavailable = "token_unavailable"

	descUnauthorized     = "no valid session"
	descNoToken          = "no access token could be obtained"
	descNoClientToken    = "the identity provider refused the gateway's client token request"
	descTokenUnavailable = "no access token could be obtained from the identity provider; try again later"
	descBadGateway       = "the upstream could not be reached"
	descUpstreamTimeout  = "the upstream did not answer in time"
)

// ErrorWriter answers a request the proxy cannot serve with status and
// the gateway's error body, whose "error" is code and whose description
// is desc (both short, fixed texts without detail). The gateway's error
// boundary provides it, so that the proxy's errors look like every other
// error of the gateway.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, code, desc string)

// handleError is the ReverseProxy's ErrorHandler: the upstream could not
// be reached or did not answer in time. The client gets 502 or 504 with
// no detail (never the upstream's address); the detail is logged once.
// If the client went away first, nobody is listening: nothing is written.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		p.logger.DebugContext(r.Context(), "client canceled the request", "method", r.Method, "err", err)
		return
	}
	status, code, desc := http.StatusBadGateway, codeBadGateway, descBadGateway
	if isTimeout(err) {
		status, code, desc = http.StatusGatewayTimeout, codeUpstreamTimeout, descUpstreamTimeout
	}
	p.logger.WarnContext(r.Context(), "upstream request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	p.cfg.WriteError(w, r, status, code, desc)
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
