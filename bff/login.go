package bff

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/bffgate/bffgate/session"
)

// loginTTL bounds how long a started login may take at the IdP.
const loginTTL = 10 * time.Minute

var errNotReady = pageError(http.StatusServiceUnavailable, "The identity provider is not reachable yet. Please try again in a moment.", errors.New("oidc discovery not done"))

// handleLogin starts the authorization code flow with PKCE S256.
func (a *app) handleLogin(c echo.Context) error {
	g := a.g
	p := a.disc.get()
	if p == nil {
		return errNotReady
	}
	returnURL := localPathOr(c.QueryParam("returnUrl"), a.cfg.PathPrefix)
	state := session.NewID()
	nonce := session.NewID()
	verifier := oauth2.GenerateVerifier()

	ls := loginState{App: a.cfg.Name, Nonce: nonce, Verifier: verifier, Return: returnURL, At: time.Now().Unix()}
	if err := g.states.save(c, g.states.loginName(state), ls); err != nil {
		return fmt.Errorf("save login state: %w", err)
	}
	authURL := p.oauth2.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, authURL)
}

// loginFailed counts a failed callback and returns its page error.
func (a *app) loginFailed(reason, msg string, err error) error {
	a.g.metrics.logins.WithLabelValues(a.cfg.Name, "failed", reason).Inc()
	return pageError(http.StatusBadRequest, msg, err)
}

// handleCallback finishes the login: state, code exchange, ID token
// verification, session creation, cookie, redirect.
func (a *app) handleCallback(c echo.Context) error {
	g := a.g
	r := c.Request()
	p := a.disc.get()
	if p == nil {
		return errNotReady
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return a.loginFailed("missing_state", "The sign-in response has no state. Please start the sign-in again.", nil)
	}
	cookieName := g.states.loginName(state)
	var ls loginState
	if err := g.states.load(r, cookieName, &ls); err != nil || ls.App != a.cfg.Name {
		return a.loginFailed("unknown_state", "This sign-in is unknown or has expired. Please start the sign-in again.", err)
	}
	// The state is single use: clear its cookie whatever happens next.
	g.states.clear(c, cookieName)

	if idpErr := q.Get("error"); idpErr != "" {
		return a.loginFailed("idp_error", "The identity provider refused the sign-in ("+truncate(idpErr, 64)+").", errors.New(truncate(q.Get("error_description"), 200)))
	}
	if time.Since(time.Unix(ls.At, 0)) > loginTTL {
		return a.loginFailed("expired", "This sign-in took too long and has expired. Please start the sign-in again.", nil)
	}
	code := q.Get("code")
	if code == "" {
		return a.loginFailed("missing_code", "The sign-in response has no code. Please start the sign-in again.", nil)
	}
	ctx := oidc.ClientContext(r.Context(), g.idp)
	tok, err := p.oauth2.Exchange(ctx, code, oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		return a.loginFailed("exchange", "The sign-in could not be completed with the identity provider. Please try again.", fmt.Errorf("code exchange: %w", err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return a.loginFailed("no_id_token", "The identity provider sent no ID token.", nil)
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return a.loginFailed("id_token", "The identity provider's ID token is not valid.", fmt.Errorf("verify id token: %w", err))
	}
	if idt.Nonce != ls.Nonce {
		return a.loginFailed("nonce", "The identity provider's ID token does not match this sign-in.", errors.New("nonce mismatch"))
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return a.loginFailed("id_token", "The identity provider's ID token is not valid.", err)
	}
	var sid string
	if raw, ok := claims["sid"]; ok {
		_ = json.Unmarshal(raw, &sid)
	}
	rawClaims, _ := json.Marshal(claims)
	now := time.Now()
	s := &session.Session{
		ID:           session.NewID(),
		App:          a.cfg.Name,
		Issuer:       idt.Issuer,
		Subject:      idt.Subject,
		SID:          sid,
		IDToken:      rawID,
		Claims:       rawClaims,
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		TokenExpiry:  tok.Expiry,
		SessionState: q.Get("session_state"),
		CreatedAt:    now,
		LastSeen:     now,
	}
	// A session cookie from before is replaced: no session fixation. The
	// old session ends like any other, so its tabs, the downstream apps
	// and the IdP (refresh token revocation) are told.
	if old, err := g.cookies.Decode(r, a.cfg.Name); err == nil {
		if _, err := g.sessions.End(r.Context(), old, session.CauseReplaced); err != nil && !errors.Is(err, session.ErrNotFound) {
			g.logger.WarnContext(r.Context(), "end the replaced session", "app", a.cfg.Name, "err", err)
		}
	}
	if err := g.sessions.Create(r.Context(), s); err != nil {
		if errors.Is(err, session.ErrRevoked) {
			return a.loginFailed("revoked", "You were signed out at the identity provider while signing in. Please sign in again.", err)
		}
		g.metrics.logins.WithLabelValues(a.cfg.Name, "failed", "store").Inc()
		return pageError(http.StatusServiceUnavailable, "Sessions are unavailable right now. Please try again shortly.", fmt.Errorf("create session: %w", err))
	}
	ck, err := g.cookies.Encode(a.cfg.Name, s.ID)
	if err != nil {
		return fmt.Errorf("encode session cookie: %w", err)
	}
	c.SetCookie(ck)
	g.metrics.logins.WithLabelValues(a.cfg.Name, "ok", "").Inc()
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, localPathOr(ls.Return, a.cfg.PathPrefix))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
