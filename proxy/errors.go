package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
)

// ErrSessionEnded means the session cannot be used any more: its access
// token expired and could not be refreshed, so it was ended. The proxy
// answers 401 and the SPA signs in again.
var ErrSessionEnded = errors.New("session ended")

// The "error" values of the JSON bodies the proxy answers with.
const (
	codeUnauthorized    = "unauthorized"
	codeBadGateway      = "bad_gateway"
	codeUpstreamTimeout = "upstream_timeout"
)

// writeError answers with status and the body {"error": code}. code is
// one of the constants above, so it needs no escaping.
func writeError(w http.ResponseWriter, status int, code string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":"`+code+`"}`+"\n")
}

// handleError is the ReverseProxy's ErrorHandler: the upstream could not
// be reached or did not answer in time. The client gets 502 or 504 with
// no detail (never the upstream's address); the detail is logged once.
// If the client went away first, nobody is listening: nothing is written.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		p.logger.DebugContext(r.Context(), "client canceled the request", "method", r.Method, "error", err)
		return
	}
	status, code := http.StatusBadGateway, codeBadGateway
	if isTimeout(err) {
		status, code = http.StatusGatewayTimeout, codeUpstreamTimeout
	}
	p.logger.WarnContext(r.Context(), "upstream request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	writeError(w, status, code)
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
