package session

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes

func newTestCodec(t *testing.T, secure bool) *CookieCodec {
	t.Helper()
	c, err := NewCookieCodec(CookieConfig{Secret: testSecret, Secure: secure, MaxAge: time.Hour})
	if err != nil {
		t.Fatalf("NewCookieCodec: %v", err)
	}
	return c
}

// request returns a request carrying the cookies.
func request(cks ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, ck := range cks {
		r.AddCookie(ck)
	}
	return r
}

func TestNewCookieCodecSecret(t *testing.T) {
	tests := []struct {
		secret  string
		wantErr bool
	}{
		{"", true},
		{testSecret[:31], true},
		{testSecret, false},
	}
	for _, tt := range tests {
		_, err := NewCookieCodec(CookieConfig{Secret: tt.secret})
		if (err != nil) != tt.wantErr {
			t.Errorf("NewCookieCodec with a %d-byte secret: got %v, want error %v", len(tt.secret), err, tt.wantErr)
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		secure   bool
		wantName string
	}{
		{false, "bffgate-demo"},
		{true, "__Host-bffgate-demo"},
	}
	for _, tt := range tests {
		c := newTestCodec(t, tt.secure)
		if got := c.Name("demo"); got != tt.wantName {
			t.Errorf("Name(demo), secure=%v: got %q, want %q", tt.secure, got, tt.wantName)
		}
		ck, err := c.Encode("demo", NewID())
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		cases := []struct {
			what   string
			ck     *http.Cookie
			maxAge int
		}{
			{"Encode", ck, 3600},
			{"Clear", c.Clear("demo"), -1},
		}
		for _, cc := range cases {
			got := cc.ck
			if got.Name != tt.wantName || got.Path != "/" || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode ||
				got.Secure != tt.secure || got.MaxAge != cc.maxAge || got.Domain != "" {
				t.Errorf("%s, secure=%v: got %s, want name %s, Path=/, HttpOnly, SameSite=Lax, Secure=%v, Max-Age=%d, no Domain",
					cc.what, tt.secure, got, tt.wantName, tt.secure, cc.maxAge)
			}
		}
		if v := c.Clear("demo").Value; v != "" {
			t.Errorf("Clear: got value %q, want empty", v)
		}
	}
}

func TestCookieRoundTrip(t *testing.T) {
	for _, secure := range []bool{false, true} {
		c := newTestCodec(t, secure)
		id := NewID()
		ck, err := c.Encode("demo", id)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if strings.Contains(ck.Value, id) {
			t.Errorf("cookie value %q contains the id in clear", ck.Value)
		}
		got, err := c.Decode(request(ck), "demo")
		if err != nil || got != id {
			t.Errorf("Decode, secure=%v: got %q, %v, want %q", secure, got, err, id)
		}
	}
}

func TestCookieDecodeErrors(t *testing.T) {
	c := newTestCodec(t, false)
	id := NewID()
	good, err := c.Encode("demo", id)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	other, err := NewCookieCodec(CookieConfig{Secret: strings.Repeat("x", 32)})
	if err != nil {
		t.Fatalf("NewCookieCodec: %v", err)
	}
	fromOtherSecret, _ := other.Encode("demo", id)
	forOtherApp, _ := c.Encode("shop", id)
	tampered := *good
	b := []byte(tampered.Value)
	b[len(b)/2] ^= 1
	tampered.Value = string(b)

	tests := []struct {
		name string
		r    *http.Request
		want error
	}{
		{"no cookie", request(), ErrNotFound},
		{"another app's cookie only", request(forOtherApp), ErrNotFound},
		{"tampered", request(&tampered), ErrInvalidCookie},
		{"another secret", request(fromOtherSecret), ErrInvalidCookie},
		{"another app's value under this name", request(&http.Cookie{Name: "bffgate-demo", Value: forOtherApp.Value}), ErrInvalidCookie},
		{"garbage", request(&http.Cookie{Name: "bffgate-demo", Value: "garbage"}), ErrInvalidCookie},
	}
	for _, tt := range tests {
		got, err := c.Decode(tt.r, "demo")
		if !errors.Is(err, tt.want) || got != "" {
			t.Errorf("Decode (%s): got %q, %v, want error %v", tt.name, got, err, tt.want)
		}
	}
	if errors.Is(ErrInvalidCookie, ErrNotFound) {
		t.Errorf("ErrInvalidCookie must not be ErrNotFound")
	}
	// A stale cookie of the same name before the good one does not hide it.
	if got, err := c.Decode(request(&tampered, good), "demo"); err != nil || got != id {
		t.Errorf("Decode with a bad then a good cookie: got %q, %v, want %q", got, err, id)
	}
}

// TestCookieMaxAge checks that the MAC'd timestamp enforces MaxAge even if
// the browser keeps the cookie (synctest's clock drives securecookie's).
func TestCookieMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCodec(t, false)
		ck, err := c.Encode("demo", "id")
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		time.Sleep(59 * time.Minute)
		if _, err := c.Decode(request(ck), "demo"); err != nil {
			t.Errorf("Decode before MaxAge: %v", err)
		}
		time.Sleep(2 * time.Minute)
		if _, err := c.Decode(request(ck), "demo"); !errors.Is(err, ErrInvalidCookie) {
			t.Errorf("Decode after MaxAge: got %v, want ErrInvalidCookie", err)
		}
	})
}

func TestIsGatewayCookie(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"bffgate-demo", true},
		{"__Host-bffgate-demo", true},
		{"__Secure-bffgate-demo", true},
		{"bffgate-login-0123abcd", true},
		{"__Host-bffgate-login-0123abcd", true},
		{"session", false},
		{"bffgate", false},
		{"my-bffgate-demo", false},
		{"__Host-session", false},
		{"Bffgate-demo", false},
	}
	for _, tt := range tests {
		if got := IsGatewayCookie(tt.name); got != tt.want {
			t.Errorf("IsGatewayCookie(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	a := DeriveKey(testSecret, "session-cookie-hmac", 32)
	tests := []struct {
		name  string
		key   []byte
		equal bool
	}{
		{"same secret and purpose", DeriveKey(testSecret, "session-cookie-hmac", 32), true},
		{"another purpose", DeriveKey(testSecret, "session-cookie-aes", 32), false},
		{"login-state purpose", DeriveKey(testSecret, "login-state-hmac", 32), false},
		{"another secret", DeriveKey(testSecret+"!", "session-cookie-hmac", 32), false},
		{"the secret itself", []byte(testSecret), false},
	}
	for _, tt := range tests {
		if got := bytes.Equal(a, tt.key); got != tt.equal {
			t.Errorf("DeriveKey vs %s: got equal=%v, want %v", tt.name, got, tt.equal)
		}
	}
	for _, size := range []int{16, 32, 64} {
		if got := len(DeriveKey(testSecret, "x", size)); got != size {
			t.Errorf("DeriveKey size %d: got %d bytes", size, got)
		}
	}
}

func TestNewID(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !valid.MatchString(id) {
			t.Fatalf("NewID: got %q, want 43 base64url characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}
