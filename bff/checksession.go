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

// checkSessionPage is GET /bff/check-session: an iframe page speaking
// the Session Management 1.0 postMessage protocol for the app's SPA
// against the gateway's own session, so that it keeps working where
// third-party cookies are blocked.
type checkSessionPage struct {
	cfg    *AppConfig
	public *url.URL
	pages  pages
}

func (p *checkSessionPage) serve(c echo.Context) error {
	p.pages.render(c, http.StatusOK, "checksession.html", pageData{
		Title:    "check session",
		Origin:   appOrigin(p.public, p.cfg, c.Request()),
		ClientID: p.cfg.ClientID,
		UserURL:  p.cfg.PathPrefix + "bff/user?slide=false",
	}, "'self'")
	return nil
}

// appOrigin is the app's own origin as the browser sees it: the public
// URL's, or with hosts, the request's (siteFor chose the app by it).
func appOrigin(public *url.URL, cfg *AppConfig, r *http.Request) string {
	host := public.Host
	if len(cfg.Hosts) > 0 {
		host = r.Host // one of cfg.Hosts
	}
	return (&url.URL{Scheme: public.Scheme, Host: host}).String()
}

// handleClientJS serves the SPA helper module.
func handleClientJS(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", clientJS)
}

// sessionState is what /bff/user reports as session_state: the IdP's,
// or, when the IdP has none or it is the IdP's sid (Keycloak's is), an
// opaque value of the gateway's own that changes with the session.
func sessionState(s *session.Session) string {
	if s.SessionState != "" && s.SessionState != s.SID {
		return s.SessionState
	}
	return "gw." + session.Hash(s.ID)
}
