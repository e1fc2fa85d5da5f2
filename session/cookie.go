package session

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/patrickmn/go-cache"
)

// Cookie name prefixes. Every cookie the gateway sets starts with
// CookiePrefix, optionally behind HostPrefix or SecurePrefix; the proxy
// strips them all (IsGatewayCookie) before a request goes upstream.
const (
	CookiePrefix      = "bffgate-"       // session cookies: bffgate-<app>; logout state: bffgate-logout-<hash>
	LoginCookiePrefix = "bffgate-login-" // login-state slots: bffgate-login-<n>
	HostPrefix        = "__Host-"        // used when the public URL is https
	SecurePrefix      = "__Secure-"
)

// ErrInvalidCookie means a gateway cookie was present but failed its MAC,
// decryption or age check.
var ErrInvalidCookie = errors.New("invalid session cookie")

// minSecretLen is the shortest accepted session secret, in bytes.
const minSecretLen = 32

// CookieConfig configures a CookieCodec.
type CookieConfig struct {
	// Secret is the gateway's session secret, at least 32 bytes. The
	// cookie keys are derived from it (DeriveKey).
	Secret string
	// Secure is true when the public URL is https: cookies get the Secure
	// attribute and the __Host- prefix.
	Secure bool
	// MaxAge is the cookie's lifetime, the session's absolute timeout;
	// default DefaultAbsoluteTimeout. The MAC'd timestamp inside the value
	// enforces it too.
	MaxAge time.Duration
}

// CookieCodec encodes the session id into the per-app session cookie and
// back: HMAC-SHA256 over AES-CTR (gorilla/securecookie), the cookie name
// bound into the MAC. It is safe for concurrent use.
type CookieCodec struct {
	sc     *securecookie.SecureCookie
	secure bool
	maxAge int // seconds
	// decoded remembers recently verified cookie values (value → name
	// and session id) for decodedTTL, so that the MAC and decryption run once
	// a minute per cookie instead of on every request. Only values that
	// verified are kept, so it grows with live sessions, not with junk.
	decoded   *cache.Cache
	lastSweep atomic.Int64 // unix seconds of the last DeleteExpired
}

// decodedTTL bounds how long a verified cookie value is trusted without
// verifying it again. Whether its session still lives is asked of the
// store on every request regardless.
const decodedTTL = time.Minute

// NewCookieCodec returns a codec whose keys are derived from cfg.Secret.
func NewCookieCodec(cfg CookieConfig) (*CookieCodec, error) {
	if len(cfg.Secret) < minSecretLen {
		return nil, fmt.Errorf("session secret: need at least %d bytes, got %d", minSecretLen, len(cfg.Secret))
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultAbsoluteTimeout
	}
	maxAge := int(cfg.MaxAge / time.Second)
	sc := securecookie.New(
		DeriveKey(cfg.Secret, "session-cookie-hmac", 32),
		DeriveKey(cfg.Secret, "session-cookie-aes", 32),
	)
	sc.SetSerializer(securecookie.NopEncoder{})
	sc.MaxAge(maxAge)
	return &CookieCodec{sc: sc, secure: cfg.Secure, maxAge: maxAge, decoded: cache.New(decodedTTL, 0)}, nil
}

// Name returns the session cookie name of app: __Host-bffgate-<app> when
// secure, else bffgate-<app>.
func (c *CookieCodec) Name(app string) string {
	if c.secure {
		return HostPrefix + CookiePrefix + app
	}
	return CookiePrefix + app
}

// Encode returns the session cookie of app carrying id.
func (c *CookieCodec) Encode(app, id string) (*http.Cookie, error) {
	name := c.Name(app)
	v, err := c.sc.Encode(name, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("encode session cookie: %w", err)
	}
	ck := c.cookie(name, v, c.maxAge)
	if err := ck.Valid(); err != nil {
		return nil, fmt.Errorf("encode session cookie: %w", err)
	}
	return ck, nil
}

// Decode returns the session id from app's session cookie in r. It returns
// an error wrapping ErrNotFound if there is no such cookie, and one
// wrapping ErrInvalidCookie if no cookie of that name decodes (tampered,
// expired, or made with another secret).
func (c *CookieCodec) Decode(r *http.Request, app string) (string, error) {
	return c.DecodeNamed(r, c.Name(app))
}

// DecodeNamed is Decode for the cookie name that Name returned for the
// app, so that a caller on the hot path computes it once.
func (c *CookieCodec) DecodeNamed(r *http.Request, name string) (string, error) {
	var lastErr error
	// A browser may send several cookies of one name (other paths or
	// domains); the first that decodes wins.
	for value := range cookieValues(r.Header, name) {
		if d, ok := c.decoded.Get(value); ok && d.(*decodedCookie).name == name {
			return d.(*decodedCookie).id, nil
		}
		var id []byte
		if err := c.sc.Decode(name, value, &id); err != nil {
			lastErr = err
			continue
		}
		c.remember(value, &decodedCookie{name: name, id: string(id)})
		return string(id), nil
	}
	if lastErr != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidCookie, lastErr)
	}
	return "", fmt.Errorf("session cookie %s: %w", name, ErrNotFound)
}

// decodedCookie is a verified cookie value's name and session id. The
// cache is keyed by the value alone, so that a lookup builds no key; the
// name is compared on a hit, since the MAC binds the value to its name.
type decodedCookie struct{ name, id string }

// cookieValues yields the values of the cookies named name in h's Cookie
// lines, in order, as net/http's Request.CookiesNamed reads them (spaces
// trimmed, one pair of double quotes removed, malformed values skipped).
// Unlike Request.Cookies, it neither parses nor allocates the request's
// other cookies.
func cookieValues(h http.Header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, line := range h["Cookie"] {
			for line != "" {
				var part string
				part, line, _ = strings.Cut(line, ";")
				n, v, _ := strings.Cut(textproto.TrimString(part), "=")
				if textproto.TrimString(n) != name {
					continue
				}
				if v, ok := cookieValue(v); ok && !yield(v) {
					return
				}
			}
		}
	}
}

// cookieValue unquotes and checks a cookie value as net/http does.
func cookieValue(v string) (string, bool) {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return v, true
}

// remember caches a verified cookie value. Expired entries are swept
// here, at most every decodedTTL, instead of by a janitor goroutine.
func (c *CookieCodec) remember(value string, d *decodedCookie) {
	c.decoded.SetDefault(value, d)
	now := time.Now().Unix()
	if last := c.lastSweep.Load(); now-last >= int64(decodedTTL/time.Second) && c.lastSweep.CompareAndSwap(last, now) {
		c.decoded.DeleteExpired()
	}
}

// Clear returns a cookie that deletes app's session cookie.
func (c *CookieCodec) Clear(app string) *http.Cookie {
	return c.cookie(c.Name(app), "", -1)
}

func (c *CookieCodec) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   c.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// IsGatewayCookie reports whether a cookie of that name belongs to the
// gateway (session or login-state cookie, with or without a __Host- or
// __Secure- prefix) and so must never reach an upstream.
func IsGatewayCookie(name string) bool {
	name, ok := strings.CutPrefix(name, HostPrefix)
	if !ok {
		name = strings.TrimPrefix(name, SecurePrefix)
	}
	return strings.HasPrefix(name, CookiePrefix)
}

// DeriveKey derives a size-byte key for one purpose from the gateway's
// secret with HKDF-SHA256, so that each use (session cookie MAC and
// encryption, login-state cookies, tokens at rest) has its own key.
// Distinct purposes give independent keys. It panics if size exceeds
// HKDF's limit (255*32 bytes), a programming error.
func DeriveKey(secret, purpose string, size int) []byte {
	k, err := hkdf.Key(sha256.New, []byte(secret), nil, "bffgate/v1/"+purpose, size)
	if err != nil {
		panic(fmt.Sprintf("session: derive key %q: %v", purpose, err))
	}
	return k
}

// NewID returns a new random id: 32 bytes from crypto/rand, base64url
// without padding (43 characters). It serves for session ids, OAuth state
// and nonces.
func NewID() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on failure)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
