package bff

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

const (
	// maxUserSessions caps the list GET /bff/sessions answers (and the
	// sessions POST /bff/sessions/end can find): the newest ones, and the
	// current one.
	maxUserSessions = 50
	// maxEndBody caps the body of POST /bff/sessions/end.
	maxEndBody = 1 << 10
	// maxHandleLen caps a handle; the gateway's own are 22 bytes.
	maxHandleLen = 64
)

// errNoSuchSession answers a handle that names none of the user's
// sessions: unknown, ended, or another user's, alike.
var errNoSuchSession = jsonError(http.StatusNotFound, "not_found", "no such session", nil)

// sessionsPage is GET /bff/sessions and POST /bff/sessions/end: the
// signed-in user's own sessions in this app (same issuer and subject),
// and ending one of them with cause user, through the session Manager,
// so that everything a sign-out does happens (downstream apps, open
// tabs, refresh-token revocation).
//
// A session is named by a handle, an HMAC of its id under a key of the
// gateway's secret: stable across replicas, and the id (the cookie's
// content) cannot be derived from it.
type sessionsPage struct {
	sess appSession
	key  []byte
}

// userSession is one entry of GET /bff/sessions.
type userSession struct {
	Handle   string    `json:"handle"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Browser  string    `json:"browser"`
	Address  string    `json:"address"`
	Current  bool      `json:"current"`
}

// handle is the session's handle in the user's session list.
func (p *sessionsPage) handle(s *session.Session) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(s.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// mine returns the user's sessions: the newest maxUserSessions, with the
// current one always among them.
func (p *sessionsPage) mine(r *http.Request, cur *session.Session) ([]*session.Session, error) {
	list, err := p.sess.sessions.ListSubject(r.Context(), cur.App, cur.Issuer, cur.Subject, maxUserSessions)
	if err != nil {
		return nil, errStoreDown(err)
	}
	for _, s := range list {
		if s.ID == cur.ID {
			return list, nil
		}
	}
	if len(list) == maxUserSessions {
		list = list[:maxUserSessions-1]
	}
	return append(list, cur), nil
}

// list answers GET /bff/sessions.
func (p *sessionsPage) list(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	if err := requireCSRF(r); err != nil {
		return err
	}
	cur, err := p.sess.load(r, true)
	if err != nil {
		return err
	}
	mine, err := p.mine(r, cur)
	if err != nil {
		return err
	}
	out := make([]userSession, len(mine))
	for i, s := range mine {
		out[i] = userSession{
			Handle: p.handle(s), Created: s.CreatedAt.UTC(), LastSeen: s.LastSeen.UTC(),
			Browser: s.Browser, Address: s.Address, Current: s.ID == cur.ID,
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": out})
}

// endRequest is the body of POST /bff/sessions/end.
type endRequest struct {
	Handle string `json:"handle"`
}

// end answers POST /bff/sessions/end: 200 {"ended": true, "current":
// bool} once the session is ended, 404 for a handle that names none of
// the user's sessions.
func (p *sessionsPage) end(c echo.Context) (err error) {
	defer spanHandler(c, "bff.sessions_end", p.sess.app)(&err)
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	if err := requireCSRF(r); err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != echo.MIMEApplicationJSON {
		return jsonError(http.StatusUnsupportedMediaType, "invalid_request", "the body must be application/json", nil)
	}
	var req endRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxEndBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return jsonError(http.StatusRequestEntityTooLarge, "invalid_request", "the body is too large", nil)
	case err != nil:
		return jsonError(http.StatusBadRequest, "invalid_request", "the body could not be read", err)
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Handle == "" || len(req.Handle) > maxHandleLen {
		return jsonError(http.StatusBadRequest, "invalid_request", `the body must be {"handle": "<a handle from GET sessions>"}`, nil)
	}
	cur, err := p.sess.load(r, false)
	if err != nil {
		return err
	}
	mine, err := p.mine(r, cur)
	if err != nil {
		return err
	}
	var victim *session.Session
	for _, s := range mine {
		if subtle.ConstantTimeCompare([]byte(p.handle(s)), []byte(req.Handle)) == 1 {
			victim = s
		}
	}
	if victim == nil {
		return errNoSuchSession
	}
	switch _, err := p.sess.sessions.End(r.Context(), victim.ID, session.CauseUser); {
	case errors.Is(err, session.ErrNotFound):
		return errNoSuchSession
	case err != nil:
		return errStoreDown(fmt.Errorf("end session: %w", err))
	}
	current := victim.ID == cur.ID
	if current {
		p.sess.clearCookie(c)
	}
	return c.JSON(http.StatusOK, map[string]bool{"ended": true, "current": current})
}
