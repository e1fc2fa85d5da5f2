package bff

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/logout"
	"github.com/bffgate/bffgate/session"
)

// maxLogoutBody caps the back-channel request body.
const maxLogoutBody = 64 << 10

// maxFormBody caps the body of POST /bff/logout, a form of sid and
// returnUrl.
const maxFormBody = 4 << 10

// logoutForm returns the parameters of GET or POST /bff/logout: the
// query, and for a POST a small application/x-www-form-urlencoded body,
// whose values come first as in net/http's Form. Any other body type is
// 415 and a body over maxFormBody 413; nothing is ever parsed as
// multipart, so nothing is spooled to the temp folder.
func logoutForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	form := r.URL.Query()
	if r.Method != http.MethodPost || r.ContentLength == 0 {
		return form, nil // a GET's body, if any, is never read
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, pageError(http.StatusUnsupportedMediaType, "Sign-out takes an application/x-www-form-urlencoded form.", nil)
	}
	if r.ContentLength > maxFormBody {
		return nil, pageError(http.StatusRequestEntityTooLarge, "The sign-out form is too large.", nil)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxFormBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, pageError(http.StatusRequestEntityTooLarge, "The sign-out form is too large.", nil)
	case err != nil:
		return nil, pageError(http.StatusBadRequest, "The sign-out form could not be read.", err)
	}
	body, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, pageError(http.StatusBadRequest, "The sign-out form is not valid.", nil)
	}
	for k, v := range form {
		body[k] = append(body[k], v...)
	}
	return body, nil
}

// backchannel is POST /bff/backchannel-logout (OpenID Connect
// Back-Channel Logout 1.0, errata 1, §2.5–2.8). Success is 200 with an
// empty body; every failure is 400 with a JSON error.
func backchannel(svc *logout.Service, c echo.Context) error {
	r := c.Request()
	w := c.Response()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return jsonError(http.StatusMethodNotAllowed, "invalid_request", "use POST", nil)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return jsonError(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded", nil)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(http.StatusRequestEntityTooLarge, "invalid_request", "the body is larger than 64 KiB", nil)
		}
		return jsonError(http.StatusBadRequest, "invalid_request", "the body is not a valid form", err)
	}
	tokens := r.PostForm["logout_token"] // the body only: a query parameter does not count
	switch {
	case len(tokens) == 0:
		return jsonError(http.StatusBadRequest, "invalid_request", "logout_token is missing", nil)
	case len(tokens) > 1:
		return jsonError(http.StatusBadRequest, "invalid_request", "logout_token is repeated", nil)
	case tokens[0] == "":
		return jsonError(http.StatusBadRequest, "invalid_request", "logout_token is empty", nil)
	}
	results, err := svc.Backchannel(r.Context(), tokens[0])
	if err != nil {
		var ve *logout.ValidationError
		if errors.As(err, &ve) {
			return jsonError(http.StatusBadRequest, "invalid_request", ve.Description, err)
		}
		return jsonError(http.StatusBadRequest, "application_error", "the logout could not be completed", err)
	}
	if len(results) > 0 {
		setApp(c, results[0].App)
	}
	return c.NoContent(http.StatusOK)
}

// logoutPages are an app's logout endpoints: front-channel, RP-initiated
// and the post-logout page.
type logoutPages struct {
	cfg    *AppConfig
	disc   *discovery
	sess   appSession
	logout *logout.Service
	states *stateCookies
	pages  pages
	down   Downstream
	// signedOutURL is the absolute post_logout_redirect_uri.
	signedOutURL string
}

// frontchannel is GET /bff/frontchannel-logout (Front-Channel Logout
// 1.0): the IdP loads it in an iframe, where third-party cookies are
// often blocked, so iss+sid end the session without the cookie.
func (lp *logoutPages) frontchannel(c echo.Context) error {
	r := c.Request()
	q := r.URL.Query()
	hasIss, hasSID := q.Has("iss"), q.Has("sid")
	ctx := r.Context()
	var ended []*session.Session
	switch {
	case hasIss && !hasSID:
		return lp.frontchannelError("iss and sid must be sent together")
	case hasSID:
		// sid without iss is Microsoft Entra ID's form: the logout service
		// takes the app's issuer if frontchannel_sid_only is set, and
		// refuses it otherwise (naming the switch in the log).
		var err error
		if hasIss {
			ended, err = lp.logout.Frontchannel(ctx, lp.cfg.Name, q.Get("iss"), q.Get("sid"))
		} else {
			ended, err = lp.logout.FrontchannelSID(ctx, lp.cfg.Name, q.Get("sid"))
		}
		if err != nil {
			var ve *logout.ValidationError
			if errors.As(err, &ve) {
				return lp.frontchannelError(ve.Description)
			}
			return pageError(http.StatusServiceUnavailable, "The sign-out could not be completed right now.", err)
		}
	case lp.cfg.FrontchannelSessionRequired:
		return lp.frontchannelError("iss and sid are required")
	case !frameLoad(r):
		// The cookie-only form is what an IdP's iframe sends; a top-level
		// cross-site navigation must not end the session by its cookie
		// (that would bypass the handle check of /bff/logout).
		return lp.frontchannelError("without iss and sid, only a frame load (Sec-Fetch-Dest: iframe) may sign out")
	default:
		if id, err := lp.sess.cookies.Decode(r, lp.cfg.Name); err == nil {
			s, err := lp.logout.FrontchannelCookie(ctx, id)
			if err != nil {
				return pageError(http.StatusServiceUnavailable, "The sign-out could not be completed right now.", err)
			}
			if s != nil {
				ended = append(ended, s)
			}
		}
	}
	lp.sess.clearCookie(c)
	// Nested iframes tell the downstream apps (Front-Channel Logout §4).
	lp.pages.render(c, http.StatusOK, "signedout.html", pageData{
		Title: "Signed out", Message: "You have been signed out.",
		Iframes: frontchannelURLs(lp.down, ended...),
	}, lp.idpOrigin())
	return nil
}

// frameLoad reports whether the browser says the request loads a frame
// (Fetch Metadata). Without Sec-Fetch-Dest (browsers before 2020–2023)
// it is false: fail closed; IdPs that send iss and sid still work there.
func frameLoad(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "iframe", "frame":
		return true
	}
	return false
}

func (lp *logoutPages) frontchannelError(msg string) error {
	return pageError(http.StatusBadRequest, "Front-channel logout refused: "+msg+".", nil)
}

// idpOrigin is the CSP source that may frame the front-channel page.
func (lp *logoutPages) idpOrigin() string {
	if o := origin(lp.cfg.Issuer); o != "" {
		return o
	}
	return "'none'"
}

// rpInitiated is RP-initiated logout, GET or POST /bff/logout?sid=….
func (lp *logoutPages) rpInitiated(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	form, err := logoutForm(c)
	if err != nil {
		return err
	}
	s, err := lp.sess.load(r, false)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.Code == http.StatusUnauthorized {
			return c.Redirect(http.StatusFound, lp.cfg.PathPrefix+"bff/signed-out")
		}
		return pageError(http.StatusServiceUnavailable, "Sessions are unavailable right now. Please try again shortly.", err)
	}
	switch err := lp.logout.RPInitiated(r.Context(), s, form.Get("sid")); {
	case errors.Is(err, logout.ErrHandleMismatch):
		return pageError(http.StatusBadRequest, "This sign-out link is not valid for your session.", err)
	case err != nil:
		return pageError(http.StatusServiceUnavailable, "The sign-out could not be completed right now.", err)
	}
	lp.sess.clearCookie(c)

	state := session.NewID()
	ls := logoutState{
		App: lp.cfg.Name, State: state, Return: localPathOr(form.Get("returnUrl"), lp.cfg.PostLogoutRedirect),
		Iframes: frontchannelURLs(lp.down, s), At: time.Now().Unix(),
	}
	if err := lp.states.save(c, lp.states.logoutName(state), ls); err != nil {
		return fmt.Errorf("save logout state: %w", err)
	}
	p := lp.disc.get()
	if p == nil || p.meta.EndSessionEndpoint == "" {
		return c.Redirect(http.StatusFound, lp.cfg.PathPrefix+"bff/signed-out?state="+url.QueryEscape(state))
	}
	end, err := url.Parse(p.meta.EndSessionEndpoint)
	if err != nil {
		return fmt.Errorf("end_session_endpoint: %w", err)
	}
	q := end.Query()
	q.Set("id_token_hint", s.IDToken)
	q.Set("post_logout_redirect_uri", lp.signedOutURL)
	q.Set("state", state)
	q.Set("client_id", lp.cfg.ClientID)
	end.RawQuery = q.Encode()
	return c.Redirect(http.StatusFound, end.String())
}

// signedOut is the post_logout_redirect_uri. With the state this
// browser was given it goes on to the app; otherwise it shows a neutral
// page and follows nothing the request carries.
func (lp *logoutPages) signedOut(c echo.Context) error {
	r := c.Request()
	dest := ""
	var iframes []string
	if state := c.QueryParam("state"); state != "" {
		name := lp.states.logoutName(state)
		var ls logoutState
		if err := lp.states.load(r, name, &ls); err == nil {
			if ls.App == lp.cfg.Name && ls.State == state && time.Since(time.Unix(ls.At, 0)) < loginTTL {
				dest = localPathOr(ls.Return, lp.cfg.PostLogoutRedirect)
				iframes = ls.Iframes
			}
			lp.states.clear(c, name) // single use
		}
	}
	if dest != "" && len(iframes) > 0 {
		// Tell the downstream apps through the browser, then go on.
		lp.pages.render(c, http.StatusOK, "signedout.html", pageData{
			Title: "Signing out", Message: "Signing you out of every app…",
			Iframes: iframes, Continue: dest, WaitMS: 3000,
		}, "'none'")
		return nil
	}
	if dest != "" {
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.Redirect(http.StatusFound, dest)
	}
	lp.pages.render(c, http.StatusOK, "error.html", pageData{
		Title: "Signed out", Message: "You are signed out.",
		Link: lp.cfg.PostLogoutRedirect, LinkText: "Back to the app",
	}, "'none'")
	return nil
}
