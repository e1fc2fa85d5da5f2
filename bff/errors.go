package bff

import (
	"context"
	"encoding/json"
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

// jsonError is an error answered as {"error": kind, "error_description":
// msg, "request_id": …}.
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
func (p pages) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	he := toHTTPError(err)
	level := slog.LevelDebug
	if he.Code >= 500 {
		level = slog.LevelError
	} else if he.Err != nil {
		level = slog.LevelInfo
	}
	p.logger.Log(c.Request().Context(), level, "request failed", "status", he.Code, "path", c.Request().URL.Path, "reason", he.Msg, "err", errString(he.Err))

	if he.Page {
		c.Response().Header().Set("Cache-Control", "no-store")
		p.renderPage(c, he.Code, pageData{Title: http.StatusText(he.Code), Message: he.Msg, RequestID: requestID(c)})
		return
	}
	kind := he.Kind
	if kind == "" {
		kind = defaultKind(he.Code)
	}
	writeJSONError(c.Response(), c.Request(), he.Code, kind, he.Msg)
}

// errorBody is the gateway's one JSON error shape: the error boundary's
// answers, the proxies' 401/502/504 and the admin API's errors.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	RequestID   string `json:"request_id"`
}

// writeJSONError answers with status and the JSON error body; the
// request id comes from r's context. It is also the proxies' WriteError.
func writeJSONError(w http.ResponseWriter, r *http.Request, status int, kind, msg string) {
	h := w.Header()
	h.Set("Content-Type", echo.MIMEApplicationJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(errorBody{Error: kind, Description: msg, RequestID: requestIDFrom(r.Context())})
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
