package bff

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

// loginState is one login attempt's state, kept in the browser until the
// callback.
type loginState struct {
	App      string `json:"app"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // the PKCE code verifier
	Return   string `json:"return"`   // the local path to go to after the login
	At       int64  `json:"at"`       // Unix time the login started
}

// logoutState binds an RP-initiated logout's state to this browser until
// the IdP sends it back to signed-out.
type logoutState struct {
	App     string   `json:"app"`
	State   string   `json:"state"`
	Return  string   `json:"return"`  // the local path to go to after the logout
	Iframes []string `json:"iframes"` // downstream front-channel logout URLs
	At      int64    `json:"at"`      // Unix time the logout started
}

// stateCookies keeps per-flow state (loginState, logoutState) in signed
// and encrypted cookies (securecookie, JSON inside), one cookie per flow,
// named after a hash of its state, so that flows started in several tabs
// do not clobber each other. Values older than loginTTL do not decode.
type stateCookies struct {
	codec  *securecookie.SecureCookie
	secure bool // https: Secure cookies with the __Host- prefix
}

func newStateCookies(secret string, secure bool) *stateCookies {
	codec := securecookie.New(
		session.DeriveKey(secret, "login-state-hmac", 32),
		session.DeriveKey(secret, "login-state-aes", 32),
	)
	codec.MaxAge(int(loginTTL / time.Second))
	codec.SetSerializer(securecookie.JSONEncoder{})
	return &stateCookies{codec: codec, secure: secure}
}

// loginName names the cookie of the login attempt with this state.
func (sc *stateCookies) loginName(state string) string { return sc.name("login", state) }

// logoutName names the cookie of the RP-initiated logout with this state.
func (sc *stateCookies) logoutName(state string) string { return sc.name("logout", state) }

func (sc *stateCookies) name(kind, state string) string {
	sum := sha256.Sum256([]byte(kind + ":" + state))
	name := "bffgate-" + kind + "-" + hex.EncodeToString(sum[:8])
	if sc.secure {
		return "__Host-" + name
	}
	return name
}

// save sets the cookie name holding v for loginTTL.
func (sc *stateCookies) save(c echo.Context, name string, v any) error {
	value, err := sc.codec.Encode(name, v)
	if err != nil {
		return err
	}
	c.SetCookie(sc.cookie(name, value, int(loginTTL/time.Second)))
	return nil
}

// load decodes the cookie name into v. It fails if the cookie is
// missing, forged, for another name or older than loginTTL.
func (sc *stateCookies) load(r *http.Request, name string, v any) error {
	ck, err := r.Cookie(name)
	if err != nil {
		return err
	}
	return sc.codec.Decode(name, ck.Value, v)
}

// clear deletes the cookie name: every state is single use.
func (sc *stateCookies) clear(c echo.Context, name string) {
	c.SetCookie(sc.cookie(name, "", -1))
}

func (sc *stateCookies) cookie(name, value string, maxAge int) *http.Cookie {
	return sessions.NewCookie(name, value, &sessions.Options{
		Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: sc.secure, SameSite: http.SameSiteLaxMode,
	})
}
