package bff

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

// requireCSRF demands the X-CSRF: 1 header that a cross-site page cannot
// send without a CORS preflight the gateway never grants.
func requireCSRF(r *http.Request) error {
	if r.Header.Get("X-Csrf") != "1" { // canonical: Get need not allocate to canonicalize it
		return jsonError(http.StatusUnauthorized, "unauthorized", "missing X-CSRF: 1 header", nil)
	}
	return nil
}

// userPage is GET /bff/user.
type userPage struct {
	cfg      *AppConfig
	sess     appSession
	timeouts session.Timeouts
	// handle is the session's logout handle (logout.Service.Handle).
	handle func(*session.Session) string
}

// serve answers GET /bff/user with the user's claims and session.
func (u *userPage) serve(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	if err := requireCSRF(r); err != nil {
		return err
	}
	s, err := u.sess.load(r, c.QueryParam("slide") != "false")
	if err != nil {
		return err
	}
	out := map[string]any{}
	if len(s.Claims) > 0 {
		if err := json.Unmarshal(s.Claims, &out); err != nil {
			return fmt.Errorf("decode stored claims: %w", err)
		}
	}
	// The IdP's sid ends the IdP session through front-channel logout
	// (iss+sid, no cookie): it never reaches the browser, not even as the
	// ID token's sid claim. The logout handle is derived from the session.
	delete(out, "sid")
	out["session_state"] = sessionState(s)
	exp := s.Expiry(u.timeouts.Idle, u.timeouts.Absolute)
	out["session_expires_in"] = max(0, int(time.Until(exp).Seconds()))
	out["logout_url"] = u.cfg.PathPrefix + "bff/logout?sid=" + url.QueryEscape(u.handle(s))
	return c.JSON(http.StatusOK, out)
}
