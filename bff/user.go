package bff

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// touchEvery limits how often a request slides a session's idle expiry:
// a write per minute instead of one per request.
const touchEvery = time.Minute

// errStoreDown answers requests that need a session while the store is
// unreachable: fail closed.
func errStoreDown(err error) error {
	return jsonError(http.StatusServiceUnavailable, "unavailable", "sessions are unavailable right now", err)
}

// loadSession returns the app's live session named by the request's
// cookie. It answers 401 without one and 503 when the store is down.
// slide=false leaves the idle expiry alone.
func (a *app) loadSession(r *http.Request, slide bool) (*session.Session, error) {
	g := a.g
	id, err := g.cookies.Decode(r, a.cfg.Name)
	if err != nil {
		return nil, errUnauthorized
	}
	s, err := g.sessions.Get(r.Context(), id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, errUnauthorized
	case err != nil:
		return nil, errStoreDown(err)
	case s.App != a.cfg.Name:
		return nil, errUnauthorized
	}
	if now := time.Now(); slide && now.Sub(s.LastSeen) >= touchEvery {
		if err := g.sessions.Touch(r.Context(), s.ID, now); err != nil {
			if errors.Is(err, session.ErrNotFound) {
				return nil, errUnauthorized
			}
			return nil, errStoreDown(err)
		}
		s.LastSeen = now
	}
	return s, nil
}

// requireCSRF demands the X-CSRF: 1 header that a cross-site page cannot
// send without a CORS preflight the gateway never grants.
func requireCSRF(r *http.Request) error {
	if r.Header.Get("X-CSRF") != "1" {
		return jsonError(http.StatusUnauthorized, "unauthorized", "missing X-CSRF: 1 header", nil)
	}
	return nil
}

// handleUser answers GET /bff/user with the user's claims and session.
func (a *app) handleUser(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	if err := requireCSRF(r); err != nil {
		return err
	}
	s, err := a.loadSession(r, c.QueryParam("slide") != "false")
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
	exp := s.Expiry(a.g.timeouts.Idle, a.g.timeouts.Absolute)
	out["session_expires_in"] = max(0, int(time.Until(exp).Seconds()))
	out["logout_url"] = a.cfg.PathPrefix + "bff/logout?sid=" + url.QueryEscape(logoutSID)
	return c.JSON(http.StatusOK, out)
}
