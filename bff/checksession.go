package bff

import (
	_ "embed"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

//go:embed static/client.js
var clientJS []byte

// handleCheckSession is GET /bff/check-session: an iframe page speaking
// the Session Management 1.0 postMessage protocol for the app's SPA
// against the gateway's own session, so that it keeps working where
// third-party cookies are blocked.
func (a *app) handleCheckSession(c echo.Context) error {
	a.g.render(c, http.StatusOK, "checksession.html", pageData{
		Title:    "check session",
		Origin:   a.origin(c.Request()),
		ClientID: a.cfg.ClientID,
		UserURL:  a.cfg.PathPrefix + "bff/user?slide=false",
	}, "'self'")
	return nil
}

// origin is the app's own origin as the browser sees it.
func (a *app) origin(r *http.Request) string {
	host := a.g.public.Host
	if len(a.cfg.Hosts) > 0 {
		host = r.Host // one of a.cfg.Hosts: appFor chose the app by it
	}
	return (&url.URL{Scheme: a.g.public.Scheme, Host: host}).String()
}

// handleClientJS serves the SPA helper module.
func handleClientJS(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", clientJS)
}

// sessionState is what /bff/user reports as session_state: the IdP's,
// or, when the IdP has none, an opaque value of the gateway's own that
// changes with the session.
func sessionState(s *session.Session) string {
	if s.SessionState != "" {
		return s.SessionState
	}
	return "gw." + session.Hash(s.ID)
}
