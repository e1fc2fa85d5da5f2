package bff

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/bffgate/bffgate/session"
)

// logoutState binds an RP-initiated logout's state to this browser until
// the IdP sends it back to signed-out.
type logoutState struct {
	App     string   `json:"app"`
	State   string   `json:"state"`
	Return  string   `json:"return"`  // the local path to go to after the logout
	Iframes []string `json:"iframes"` // downstream front-channel logout URLs
	At      int64    `json:"at"`      // Unix time the logout started
}

// stateCookies keeps per-flow state in cookies that only the endpoint
// finishing the flow gets, and that a browser can hold only a few of, so
// that no page can make the browser's Cookie header grow ("cookie bomb").
//
// A login lives in one of maxLoginAttempts slot cookies scoped to
// {prefix}bff/callback: a signed returnUrl, bound (by the MAC) to the
// app and the login's state. Its nonce and PKCE verifier are derived from
// the state under a key of the gateway's secret, so the cookie stays
// under 1 KiB. A small cookie scoped to {prefix}bff/login names the slot
// the next login takes, the oldest one.
//
// A logout's state (logoutState) is encrypted JSON in a cookie named
// after a hash of its state and scoped to {prefix}bff/signed-out; a
// logout needs a session, so an anonymous page cannot repeat it.
//
// Values older than loginTTL do not decode.
type stateCookies struct {
	codec  *securecookie.SecureCookie // logout state: encrypted JSON
	login  *securecookie.SecureCookie // login state: a signed returnUrl
	derive []byte                     // key of a login's nonce and verifier
	macs   sync.Pool                  // of HMAC-SHA256 keyed with derive
	secure bool                       // https: Secure cookies with the __Secure- prefix
}

var errUnknownState = errors.New("no login state for this state")

func newStateCookies(secret string, secure bool) *stateCookies {
	codec := securecookie.New(
		session.DeriveKey(secret, "login-state-hmac", 32),
		session.DeriveKey(secret, "login-state-aes", 32),
	)
	codec.MaxAge(int(loginTTL / time.Second))
	codec.SetSerializer(securecookie.JSONEncoder{})
	login := securecookie.New(session.DeriveKey(secret, "login-slot-hmac", 32), nil)
	login.MaxAge(int(loginTTL / time.Second))
	login.SetSerializer(securecookie.NopEncoder{})
	return &stateCookies{codec: codec, login: login, derive: session.DeriveKey(secret, "login-secrets", 32), secure: secure}
}

// saveLogin starts a login of app (served under prefix) that returns to
// returnURL: it stores it in the oldest slot and returns its new state,
// marked as silent (prompt=none, see isSilentState) if silent. Logins and
// silent logins take turns over the same slots: the cookie naming the
// next slot is set on both paths.
func (sc *stateCookies) saveLogin(c echo.Context, prefix, app, returnURL string, silent bool) (string, error) {
	slot := 0
	if ck, err := c.Request().Cookie(sc.prefixed(session.LoginCookiePrefix + "next")); err == nil {
		if n, err := strconv.Atoi(ck.Value); err == nil && n >= 0 && n < maxLoginAttempts {
			slot = n
		}
	}
	state := session.NewID()
	if silent {
		state = silentStatePrefix + state
	}
	name := sc.slotName(slot)
	value, err := sc.login.Encode(app+"|"+name+"|"+state, []byte(returnURL))
	if err != nil {
		return "", err
	}
	maxAge := int(loginTTL / time.Second)
	c.SetCookie(sc.cookie(name, value, prefix+"bff/callback", maxAge))
	next := strconv.Itoa((slot + 1) % maxLoginAttempts)
	for _, path := range []string{"bff/login", "bff/silent-login"} {
		c.SetCookie(sc.cookie(sc.prefixed(session.LoginCookiePrefix+"next"), next, prefix+path, maxAge))
	}
	return state, nil
}

// silentStatePrefix marks the state of a silent login. The state is
// bound to its slot cookie by the MAC, so the mark cannot be added to or
// taken from a login's state.
const silentStatePrefix = "silent."

// isSilentState reports whether state is a silent login's.
func isSilentState(state string) bool { return strings.HasPrefix(state, silentStatePrefix) }

// loadLogin finds the login of app with this state among the slots the
// browser sent, clears its slot (a state is single use) and returns its
// returnUrl. It fails if no slot holds that state, or the login is older
// than loginTTL.
func (sc *stateCookies) loadLogin(c echo.Context, prefix, app, state string) (string, error) {
	r := c.Request()
	for i := range maxLoginAttempts {
		name := sc.slotName(i)
		ck, err := r.Cookie(name)
		if err != nil {
			continue
		}
		var ret []byte
		if sc.login.Decode(app+"|"+name+"|"+state, ck.Value, &ret) == nil {
			c.SetCookie(sc.cookie(name, "", prefix+"bff/callback", -1))
			return string(ret), nil
		}
	}
	return "", errUnknownState
}

// loginSecrets returns the OIDC nonce and the PKCE code verifier of the
// login with this state: HMACs of the state under a key only the gateway
// has, so they need not be stored.
func (sc *stateCookies) loginSecrets(state string) (nonce, verifier string) {
	m, _ := sc.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, sc.derive)
	}
	defer sc.macs.Put(m)
	return mac(m, "nonce", state), mac(m, "verifier", state)
}

// mac returns HMAC(purpose "\x00" state) with m, a keyed HMAC it resets,
// in base64url: 43 characters, as PKCE wants.
func mac(m hash.Hash, purpose, state string) string {
	m.Reset()
	io.WriteString(m, purpose)
	m.Write([]byte{0})
	io.WriteString(m, state)
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0]))
}

func (sc *stateCookies) slotName(i int) string {
	return sc.prefixed(session.LoginCookiePrefix + strconv.Itoa(i))
}

// logoutName names the cookie of the RP-initiated logout with this state.
func (sc *stateCookies) logoutName(state string) string {
	sum := sha256.Sum256([]byte("logout:" + state))
	return sc.prefixed(session.CookiePrefix + "logout-" + hex.EncodeToString(sum[:8]))
}

// prefixed adds the __Secure- prefix over https. (__Host- needs Path=/.)
func (sc *stateCookies) prefixed(name string) string {
	if sc.secure {
		return session.SecurePrefix + name
	}
	return name
}

// save sets the logout state cookie name holding v for loginTTL, scoped
// to the signed-out endpoint next to the request's route.
func (sc *stateCookies) save(c echo.Context, name string, v any) error {
	value, err := sc.codec.Encode(name, v)
	if err != nil {
		return err
	}
	c.SetCookie(sc.cookie(name, value, signedOutPath(c), int(loginTTL/time.Second)))
	return nil
}

// load decodes the logout state cookie name into v. It fails if the
// cookie is missing, forged, for another name or older than loginTTL.
func (sc *stateCookies) load(r *http.Request, name string, v any) error {
	ck, err := r.Cookie(name)
	if err != nil {
		return err
	}
	return sc.codec.Decode(name, ck.Value, v)
}

// clear deletes the logout state cookie name: every state is single use.
func (sc *stateCookies) clear(c echo.Context, name string) {
	c.SetCookie(sc.cookie(name, "", signedOutPath(c), -1))
}

// signedOutPath is {prefix}bff/signed-out for the request's route
// ({prefix}bff/logout or {prefix}bff/signed-out).
func signedOutPath(c echo.Context) string {
	p := c.Path()
	if i := strings.LastIndex(p, "/bff/"); i >= 0 {
		return p[:i] + "/bff/signed-out"
	}
	return "/bff/signed-out"
}

func (sc *stateCookies) cookie(name, value, path string, maxAge int) *http.Cookie {
	return sessions.NewCookie(name, value, &sessions.Options{
		Path: path, MaxAge: maxAge, HttpOnly: true, Secure: sc.secure, SameSite: http.SameSiteLaxMode,
	})
}
