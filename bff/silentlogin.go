package bff

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"

	"github.com/labstack/echo/v4"
)

// Silent login (GET /bff/silent-login): the code flow with prompt=none in
// a hidden iframe of the app. It shares /bff/login's state, nonce, PKCE
// and login-state slots; the callback of a silent login never redirects
// and never shows an error page: it answers a page that tells the app by
// postMessage, to the app's own origin only, whether a session was
// created. The IdP's answers that the user must interact
// (login_required and the like) are results, not errors.

// silentMessageType is the type of the message the result page posts.
const silentMessageType = "bffgate:silent-login"

// silentAnswers are the IdP's errors to a prompt=none request that only
// mean "no session without the user" (OIDC Core 1.0 §3.1.2.6): the
// bffgate_logins_total result "none", not "failed".
var silentAnswers = map[string]bool{
	"login_required":             true,
	"interaction_required":       true,
	"consent_required":           true,
	"account_selection_required": true,
}

// errorCode matches an OAuth error code safe to pass on to the page.
var errorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// silentStart is GET /bff/silent-login. A browser that already has a
// session of the app gets "ok" at once: a new login would replace the
// session and sign its other tabs out.
func (l *loginFlow) silentStart(c echo.Context) error {
	if _, err := l.sess.load(c.Request(), false); err == nil {
		return l.silentPage(c, true, "")
	}
	p := l.disc.get()
	if p == nil {
		l.logins.WithLabelValues(l.cfg.Name, "failed", "not_ready").Inc()
		return l.silentPage(c, false, "temporarily_unavailable")
	}
	err := l.redirect(c, p, l.cfg.PathPrefix, true)
	var le *loginError
	if errors.As(err, &le) { // a failed pushed authorization request
		l.logins.WithLabelValues(l.cfg.Name, "failed", le.reason).Inc()
		l.logger.WarnContext(c.Request().Context(), "silent login failed", "app", l.cfg.Name, "reason", le.reason, "err", errString(le.page))
		return l.silentPage(c, false, "temporarily_unavailable")
	}
	return err
}

// silentResult answers the callback of a silent login with its result
// page, counting it in bffgate_logins_total: ok (reason silent), none
// (the IdP needs the user: reason is its error) or failed.
func (l *loginFlow) silentResult(c echo.Context, err error) error {
	var le *loginError
	switch {
	case err == nil:
		l.logins.WithLabelValues(l.cfg.Name, "ok", "silent").Inc()
		return l.silentPage(c, true, "")
	case errors.As(err, &le) && le.reason == "idp_error" && silentAnswers[le.idp]:
		l.logins.WithLabelValues(l.cfg.Name, "none", le.idp).Inc()
		return l.silentPage(c, false, le.idp)
	case errors.As(err, &le):
		l.logins.WithLabelValues(l.cfg.Name, "failed", le.reason).Inc()
		code := le.reason
		if le.reason == "idp_error" && errorCode.MatchString(le.idp) {
			code = le.idp
		}
		l.logger.InfoContext(c.Request().Context(), "silent login failed", "app", l.cfg.Name, "reason", le.reason, "err", errString(le.page))
		return l.silentPage(c, false, code)
	case errors.Is(err, errNotReady):
		return l.silentPage(c, false, "temporarily_unavailable")
	default:
		l.logger.WarnContext(c.Request().Context(), "silent login failed", "app", l.cfg.Name, "err", err)
		return l.silentPage(c, false, "server_error")
	}
}

// silentMessage is what the result page posts to the app.
type silentMessage struct {
	Type  string `json:"type"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// silentPage renders the result page: frameable by the app's own origin
// only (frame-ancestors 'self'), posting its message to that origin.
func (l *loginFlow) silentPage(c echo.Context, ok bool, code string) error {
	msg, _ := json.Marshal(silentMessage{Type: silentMessageType, OK: ok, Error: code})
	pages{logger: l.logger}.render(c, http.StatusOK, "silentlogin.html", pageData{
		Title:   "silent login",
		Origin:  appOrigin(l.public, l.cfg, c.Request()),
		Message: string(msg),
	}, "'self'")
	return nil
}
