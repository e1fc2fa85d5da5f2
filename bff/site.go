package bff

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// site is one app's routes: a handler per feature, each built in New with
// exactly the collaborators it uses.
type site struct {
	app          *app
	login        *loginFlow
	user         *userPage
	logout       *logoutPages
	events       *eventStreams
	checkSession *checkSessionPage
	sessions     *sessionsPage
	proxy        *proxyDispatch
}

// shared are the gateway-wide parts the sites are built from.
type shared struct {
	public   *url.URL
	sessions *session.Manager
	cookies  *session.CookieCodec
	states   *stateCookies
	pages    pages
	logout   *logout.Service
	events   *broker
	down     Downstream
	timeouts session.Timeouts
	idp      *http.Client
	logins   *prometheus.CounterVec
	maxBody  int64
	browsers *browsers
	// handleKey keys the handles of GET /bff/sessions.
	handleKey []byte
}

func newSite(a *app, sh shared) *site {
	cfg := &a.cfg
	sess := appSession{app: cfg.Name, issuer: cfg.Issuer, cookie: sh.cookies.Name(cfg.Name), cookies: sh.cookies, sessions: sh.sessions}
	return &site{
		app: a,
		login: &loginFlow{cfg: cfg, disc: a.disc, states: sh.states, sess: sess, idp: a.idp,
			logins: sh.logins, logger: sh.pages.logger, public: sh.public, browsers: sh.browsers},
		user: &userPage{cfg: cfg, sess: sess, timeouts: sh.timeouts, handle: sh.logout.Handle},
		logout: &logoutPages{cfg: cfg, disc: a.disc, sess: sess, logout: sh.logout, states: sh.states,
			pages: sh.pages, down: sh.down, signedOutURL: sh.public.String() + cfg.PathPrefix + "bff/signed-out"},
		events:       &eventStreams{sess: sess, broker: sh.events},
		checkSession: &checkSessionPage{cfg: cfg, public: sh.public, pages: sh.pages},
		sessions:     &sessionsPage{sess: sess, key: sh.handleKey},
		proxy:        &proxyDispatch{apis: a.apis, frontend: a.frontend, sess: sess, maxBody: sh.maxBody, public: sh.public, cfg: cfg},
	}
}

// touchEvery limits how often a request slides a session's idle expiry:
// a write per minute instead of one per request.
const touchEvery = time.Minute

// errStoreDown answers requests that need a session while the store is
// unreachable: fail closed.
func errStoreDown(err error) error {
	return jsonError(http.StatusServiceUnavailable, "unavailable", "sessions are unavailable right now", err)
}

// appSession finds one app's session from the request's cookie.
type appSession struct {
	app    string
	cookie string // the app's session cookie name (CookieCodec.Name)
	// issuer is the app's: a session from another issuer (the app's
	// issuer changed in a reload) is refused.
	issuer   string
	cookies  *session.CookieCodec
	sessions *session.Manager
}

// load returns the app's live session named by the request's cookie. It
// answers 401 without one and 503 when the store is down. slide=false
// leaves the idle expiry alone.
func (as appSession) load(r *http.Request, slide bool) (*session.Session, error) {
	return as.find(r, slide, false)
}

// loadView is load for the proxy: the session without its claims
// (session.Manager.View), which the proxy never reads.
func (as appSession) loadView(r *http.Request) (*session.Session, error) {
	return as.find(r, true, true)
}

func (as appSession) find(r *http.Request, slide, view bool) (*session.Session, error) {
	id, err := as.cookies.DecodeNamed(r, as.cookie)
	if err != nil {
		return nil, errUnauthorized
	}
	var s *session.Session
	if view {
		s, err = as.sessions.View(r.Context(), id)
	} else {
		s, err = as.sessions.Get(r.Context(), id)
	}
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, errUnauthorized
	case err != nil:
		return nil, errStoreDown(err)
	case s.App != as.app, s.Issuer != as.issuer:
		return nil, errUnauthorized
	}
	if now := time.Now(); slide && now.Sub(s.LastSeen) >= touchEvery {
		if err := as.sessions.Touch(r.Context(), s.ID, now); err != nil {
			if errors.Is(err, session.ErrNotFound) {
				return nil, errUnauthorized
			}
			return nil, errStoreDown(err)
		}
		s.LastSeen = now
	}
	return s, nil
}

// clearCookie clears the app's session cookie if the request has one.
func (as appSession) clearCookie(c echo.Context) {
	if _, err := c.Request().Cookie(as.cookie); err == nil {
		c.SetCookie(as.cookies.Clear(as.app))
	}
}
