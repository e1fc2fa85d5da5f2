package bff

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// requireCSRF demands the X-CSRF: 1 header that a cross-site page cannot
// send without a CORS preflight the gateway never grants.
func requireCSRF(r *http.Request) error {
	if r.Header.Get("X-CSRF") != "1" {
		return jsonError(http.StatusUnauthorized, "unauthorized", "missing X-CSRF: 1 header", nil)
	}
	return nil
}

// userPage is GET /bff/user.
type userPage struct {
	cfg      *AppConfig
	sess     appSession
	timeouts session.Timeouts
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
	logoutSID := logout.Handle(s)
	out["sid"] = s.SID
	out["session_state"] = sessionState(s)
	exp := s.Expiry(u.timeouts.Idle, u.timeouts.Absolute)
	out["session_expires_in"] = max(0, int(time.Until(exp).Seconds()))
	out["logout_url"] = u.cfg.PathPrefix + "bff/logout?sid=" + url.QueryEscape(logoutSID)
	return c.JSON(http.StatusOK, out)
}
