package bff

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/internal/dpop"
	"github.com/bffgate/bffgate/internal/spans"
	"github.com/bffgate/bffgate/session"
)

// loginTTL bounds how long a started login may take at the IdP.
const loginTTL = 10 * time.Minute

var errNotReady = pageError(http.StatusServiceUnavailable, "The identity provider is not reachable yet. Please try again in a moment.", errors.New("oidc discovery not done"))

// loginFlow is GET /bff/login and /bff/callback: the authorization code
// flow with PKCE, ending in a new session.
type loginFlow struct {
	cfg    *AppConfig
	disc   *discovery
	states *stateCookies
	// sess ends a replaced session and creates the new one.
	sess   appSession
	idp    *http.Client
	logins *prometheus.CounterVec
	logger *slog.Logger
	// public and the app's hosts give the app's origin, the only one a
	// silent login's result page posts to.
	public *url.URL
	// browsers describes the User-Agent of the browser that signs in.
	browsers *browsers
}

// start starts the authorization code flow with PKCE S256.
func (l *loginFlow) start(c echo.Context) (err error) {
	defer spanHandler(c, "bff.login", l.cfg.Name)(&err)
	p := l.disc.get()
	if p == nil {
		return errNotReady
	}
	raw := c.QueryParam("returnUrl")
	if len(raw) > maxReturnURLBytes {
		return pageError(http.StatusBadRequest, "The address to return to after signing in is too long.", nil)
	}
	err = l.redirect(c, p, localPathOr(raw, l.cfg.PathPrefix), false)
	var le *loginError
	if errors.As(err, &le) { // a failed pushed authorization request (handleError logs it)
		l.logins.WithLabelValues(l.cfg.Name, "failed", le.reason).Inc()
	}
	return err
}

// redirect saves a new login's state and sends the browser to the IdP's
// authorization endpoint; a silent login asks for prompt=none.
func (l *loginFlow) redirect(c echo.Context, p *provider, returnURL string, silent bool) error {
	state, err := l.states.saveLogin(c, l.cfg.PathPrefix, l.cfg.Name, returnURL, silent)
	if err != nil {
		return fmt.Errorf("save login state: %w", err)
	}
	nonce, verifier := l.states.loginSecrets(state)
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if silent {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "none"))
	}
	to := p.oauth2.AuthCodeURL(state, opts...)
	if p.par != "" {
		pctx, span := spans.Start(c.Request().Context(), tracerName, "oidc.par")
		to, err = pushAuthorization(pctx, l.idp, p.auth, p.par, p.oauth2.Endpoint.AuthURL, to)
		spans.End(span, err)
		if err != nil {
			return &loginError{reason: "par", page: pageError(http.StatusBadGateway, errPARPage, err)}
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, to)
}

// loginError is a failed callback: the page an interactive login shows,
// and the reason (bffgate_logins_total's label, and the error a silent
// login reports to its page).
type loginError struct {
	reason string
	page   error
	// idp is the IdP's error code, for reason idp_error.
	idp string
}

func (e *loginError) Error() string { return e.page.Error() }
func (e *loginError) Unwrap() error { return e.page }

// failed returns a failed callback's error (counted by the caller).
func (l *loginFlow) failed(reason, msg string, err error) error {
	return &loginError{reason: reason, page: pageError(http.StatusBadRequest, msg, err)}
}

// callback is GET /bff/callback: it finishes the login (complete), then
// redirects to its returnUrl, or for a silent login answers the page
// that tells the app (silentResult).
func (l *loginFlow) callback(c echo.Context) (err error) {
	defer spanHandler(c, "bff.callback", l.cfg.Name)(&err)
	state := c.QueryParam("state")
	ret, err := l.complete(c)
	if isSilentState(state) && len(state) <= maxStateBytes {
		return l.silentResult(c, err)
	}
	var le *loginError
	switch {
	case errors.As(err, &le):
		l.logins.WithLabelValues(l.cfg.Name, "failed", le.reason).Inc()
		return err
	case err != nil:
		return err
	}
	l.logins.WithLabelValues(l.cfg.Name, "ok", "").Inc()
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, localPathOr(ret, l.cfg.PathPrefix))
}

// complete finishes the login: state, code exchange, ID token
// verification, session creation, cookie. It returns the login's
// returnUrl.
func (l *loginFlow) complete(c echo.Context) (string, error) {
	r := c.Request()
	p := l.disc.get()
	if p == nil {
		return "", errNotReady
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return "", l.failed("missing_state", "The sign-in response has no state. Please start the sign-in again.", nil)
	}
	if len(state) > maxStateBytes {
		return "", l.failed("unknown_state", "This sign-in is unknown or has expired. Please start the sign-in again.", errors.New("state too long"))
	}
	// The state is single use: loadLogin clears its cookie whatever
	// happens next. A login older than loginTTL is not found.
	returnURL, err := l.states.loadLogin(c, l.cfg.PathPrefix, l.cfg.Name, state)
	if err != nil {
		return "", l.failed("unknown_state", "This sign-in is unknown or has expired. Please start the sign-in again.", err)
	}
	nonce, verifier := l.states.loginSecrets(state)
	// RFC 9207: the response must come from the app's IdP (mix-up
	// defence), checked before anything else of it is used.
	if err := checkResponseISS(p, l.cfg.Issuer, q); err != nil {
		return "", err
	}

	if idpErr := q.Get("error"); idpErr != "" {
		le := l.failed("idp_error", "The identity provider refused the sign-in ("+truncate(idpErr, 64)+").", errors.New(truncate(q.Get("error_description"), 200))).(*loginError)
		le.idp = idpErr
		return "", le
	}
	code := q.Get("code")
	if code == "" {
		return "", l.failed("missing_code", "The sign-in response has no code. Please start the sign-in again.", nil)
	}
	ctx := oidc.ClientContext(r.Context(), l.idp)
	opts, err := p.auth.ExchangeOptions()
	if err != nil {
		return "", l.failed("exchange", "The sign-in could not be completed with the identity provider. Please try again.", fmt.Errorf("client assertion: %w", err))
	}
	// DPoP: the session's own key, made here and kept in the session;
	// the exchange's proof asks the IdP to bind the tokens to it.
	exchCtx, key, err := l.dpopKey(ctx)
	if err != nil {
		return "", l.failed("exchange", "The sign-in could not be completed with the identity provider. Please try again.", err)
	}
	issued := time.Now() // with the expiry, the token's lifetime (the refresh margin)
	exchCtx = dpop.WithFormRefresh(exchCtx, p.auth.RefreshAssertion)
	xctx, span := spans.Start(exchCtx, tracerName, "oidc.code_exchange")
	tok, err := p.oauth2.Exchange(xctx, code, append(opts, oauth2.VerifierOption(verifier))...)
	spans.End(span, err)
	if err != nil {
		return "", l.failed("exchange", "The sign-in could not be completed with the identity provider. Please try again.", fmt.Errorf("code exchange: %w", err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return "", l.failed("no_id_token", "The identity provider sent no ID token.", nil)
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return "", l.failed("id_token", "The identity provider's ID token is not valid.", fmt.Errorf("verify id token: %w", err))
	}
	if idt.Nonce != nonce {
		return "", l.failed("nonce", "The identity provider's ID token does not match this sign-in.", errors.New("nonce mismatch"))
	}
	if l.cfg.isFAPI2() {
		if err := fapi2Token(tok, issued, idt, time.Now()); err != nil {
			return "", l.failed("fapi2", "The identity provider's answer does not meet the security profile of this application.", err)
		}
	}
	var ui map[string]json.RawMessage
	if l.cfg.UserInfo {
		uctx, span := spans.Start(userinfoContext(ctx, key, tok.TokenType, tok.AccessToken), tracerName, "oidc.userinfo")
		ui, err = fetchUserinfo(uctx, l.idp, p, tok.AccessToken, idt.Subject)
		spans.End(span, err)
		if err != nil {
			return "", l.failed("userinfo", "The identity provider's user information could not be used. Please try again.", err)
		}
	}
	rawClaims, sid, err := sessionClaims(idt, ui)
	if err != nil {
		return "", l.failed("id_token", "The identity provider's ID token is not valid.", err)
	}
	now := time.Now()
	s := &session.Session{
		ID:           session.NewID(),
		App:          l.cfg.Name,
		Issuer:       idt.Issuer,
		Subject:      idt.Subject,
		SID:          sid,
		IDToken:      rawID,
		Claims:       rawClaims,
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		TokenExpiry:  tok.Expiry,
		TokenIssued:  issued,
		TokenType:    tok.TokenType,
		SessionState: q.Get("session_state"),
		CreatedAt:    now,
		LastSeen:     now,
		Browser:      l.browsers.describe(r.UserAgent()),
		Address:      truncate(c.RealIP(), session.MaxAddressLen),
	}
	if key != nil {
		s.DPoPKey = key.Bytes()
		if !isDPoP(tok.TokenType) {
			l.logger.WarnContext(r.Context(), "dpop: the identity provider issued an unbound access token; the APIs get it as a bearer token", "app", l.cfg.Name, "token_type", truncate(tok.TokenType, 32))
		}
	}
	// A session cookie from before is replaced: no session fixation. The
	// old session ends like any other, so its tabs, the downstream apps
	// and the IdP (refresh token revocation) are told.
	if old, err := l.sess.cookies.Decode(r, l.cfg.Name); err == nil {
		if _, err := l.sess.sessions.End(r.Context(), old, session.CauseReplaced); err != nil && !errors.Is(err, session.ErrNotFound) {
			l.logger.WarnContext(r.Context(), "end the replaced session", "app", l.cfg.Name, "err", err)
		}
	}
	if err := l.sess.sessions.Create(r.Context(), s); err != nil {
		if errors.Is(err, session.ErrRevoked) {
			return "", l.failed("revoked", "You were signed out at the identity provider while signing in. Please sign in again.", err)
		}
		return "", &loginError{reason: "store", page: pageError(http.StatusServiceUnavailable, "Sessions are unavailable right now. Please try again shortly.", fmt.Errorf("create session: %w", err))}
	}
	ck, err := l.sess.cookies.Encode(l.cfg.Name, s.ID)
	if err != nil {
		return "", fmt.Errorf("encode session cookie: %w", err)
	}
	c.SetCookie(ck)
	return returnURL, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
