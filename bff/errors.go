package bff

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// httpError is the one error type handlers return. Msg is safe to show the
// client; Err is the detail, logged once by the error boundary and never
// sent.
type httpError struct {
	Code int
	// Kind is the OAuth-style error code for JSON answers
	// ("unauthorized", "invalid_request", …).
	Kind string
	Msg  string
	Err  error
	// Page renders an HTML page instead of JSON.
	Page bool
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *httpError) Unwrap() error { return e.Err }

// jsonError is an error answered as {"error": kind, "error_description": msg}.
func jsonError(code int, kind, msg string, err error) error {
	return &httpError{Code: code, Kind: kind, Msg: msg, Err: err}
}

// pageError is an error answered as an HTML page.
func pageError(code int, msg string, err error) error {
	return &httpError{Code: code, Msg: msg, Err: err, Page: true}
}

var errUnauthorized = jsonError(http.StatusUnauthorized, "unauthorized", "no valid session", nil)

// handleError is the gateway's one error boundary (Echo's HTTPErrorHandler):
// it maps an error to a status, answers with a short message and the
// request id, and logs the detail once.
func (g *Gateway) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	he := toHTTPError(err)
	rid := requestID(c)
	level := slog.LevelDebug
	if he.Code >= 500 {
		level = slog.LevelError
	} else if he.Err != nil {
		level = slog.LevelInfo
	}
	g.logger.Log(c.Request().Context(), level, "request failed", "status", he.Code, "path", c.Request().URL.Path, "msg", he.Msg, "err", errString(he.Err))

	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	if he.Page {
		g.renderPage(c, he.Code, pageData{Title: http.StatusText(he.Code), Message: he.Msg, RequestID: rid})
		return
	}
	kind := he.Kind
	if kind == "" {
		kind = defaultKind(he.Code)
	}
	body := map[string]string{"error": kind, "error_description": he.Msg}
	if rid != "" {
		body["request_id"] = rid
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(he.Code)
		return
	}
	_ = c.JSON(he.Code, body)
}

// toHTTPError maps any error to an httpError, in one table.
func toHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ee *echo.HTTPError
	if errors.As(err, &ee) {
		msg := http.StatusText(ee.Code)
		return &httpError{Code: ee.Code, Msg: msg, Err: ee.Internal}
	}
	if errors.Is(err, context.Canceled) {
		return &httpError{Code: 499, Kind: "canceled", Msg: "request canceled", Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &httpError{Code: http.StatusGatewayTimeout, Msg: "timed out", Err: err}
	}
	return &httpError{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
}

func defaultKind(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if code >= 500 {
		return "server_error"
	}
	return "invalid_request"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
