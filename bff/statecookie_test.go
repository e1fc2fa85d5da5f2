package bff

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/labstack/echo/v4"
)

// roundTrip saves v in a state cookie and returns a request carrying it
// back under the name sent.
func roundTrip(t *testing.T, sc *stateCookies, name string, v any) (*http.Request, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
	if err := sc.save(c, name, v); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("set %d cookies, want 1", len(cookies))
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookies[0])
	return req, cookies[0]
}

func TestStateCookies(t *testing.T) {
	sc := newStateCookies(testSecret, true)
	name := sc.logoutName("state-1")
	want := logoutState{App: "demo", State: "state-1", Return: "/bye", Iframes: []string{"https://a.example/fc", "https://b.example/fc"}, At: 42}
	req, ck := roundTrip(t, sc, name, want)
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/bff/signed-out" || ck.MaxAge != int(loginTTL/time.Second) {
		t.Errorf("cookie %s: want HttpOnly, Secure, SameSite=Lax, Path=/bff/signed-out and Max-Age %v", ck, loginTTL)
	}
	if !strings.HasPrefix(name, "__Secure-") {
		t.Errorf("name %q, want the __Secure- prefix over https", name)
	}
	var got logoutState
	if err := sc.load(req, name, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("load = %+v, %v; want %+v", got, err, want)
	}
	// Another state's name: the value is bound to its name.
	other := sc.logoutName("state-2")
	forged := httptest.NewRequest(http.MethodGet, "/", nil)
	forged.AddCookie(&http.Cookie{Name: other, Value: ck.Value})
	if err := sc.load(forged, other, &got); err == nil {
		t.Error("a value moved to another state's cookie decoded")
	}
	// Another secret.
	if err := newStateCookies(testSecret+"x", true).load(req, name, &got); err == nil {
		t.Error("a value decoded under another secret")
	}
}

// saveLogin answers a request, and the browser sends the cookies it set
// back to the callback.
func startLoginFor(t *testing.T, sc *stateCookies, app, ret string) (state string, callback *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/bff/login", nil), rec)
	state, err := sc.saveLogin(c, "/", app, ret, false)
	if err != nil {
		t.Fatal(err)
	}
	callback = httptest.NewRequest(http.MethodGet, "/bff/callback", nil)
	for _, ck := range rec.Result().Cookies() {
		if ck.Path == "/bff/callback" {
			callback.AddCookie(ck)
		}
	}
	return state, callback
}

func TestLoginStateCookie(t *testing.T) {
	sc := newStateCookies(testSecret, true)
	state, req := startLoginFor(t, sc, "demo", "/back")
	load := func(sc *stateCookies, app, state string) (string, []*http.Cookie, error) {
		rec := httptest.NewRecorder()
		ret, err := sc.loadLogin(echo.New().NewContext(req, rec), "/", app, state)
		return ret, rec.Result().Cookies(), err
	}
	ret, set, err := load(sc, "demo", state)
	if err != nil || ret != "/back" {
		t.Fatalf("loadLogin = %q, %v; want /back", ret, err)
	}
	if len(set) != 1 || set[0].MaxAge >= 0 || set[0].Path != "/bff/callback" || set[0].Name != "__Secure-bffgate-login-0" {
		t.Errorf("loadLogin set %v, want slot 0 cleared at /bff/callback", set)
	}
	for name, try := range map[string]func() error{
		"another state":  func() error { _, _, err := load(sc, "demo", state+"x"); return err },
		"another app":    func() error { _, _, err := load(sc, "other", state); return err },
		"another secret": func() error { _, _, err := load(newStateCookies(testSecret+"x", true), "demo", state); return err },
	} {
		if try() == nil {
			t.Errorf("%s: the login state decoded", name)
		}
	}
	nonce, verifier := sc.loginSecrets(state)
	n2, v2 := newStateCookies(testSecret+"x", true).loginSecrets(state)
	if nonce == verifier || len(verifier) != 43 || nonce == n2 || verifier == v2 {
		t.Errorf("loginSecrets = %q, %q: want two distinct 43-character values that depend on the secret", nonce, verifier)
	}
}

func TestStateCookieExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newStateCookies(testSecret, false)
		state, req := startLoginFor(t, sc, "demo", "/")
		c := echo.New().NewContext(req, httptest.NewRecorder())
		time.Sleep(loginTTL - time.Minute)
		if ret, err := sc.loadLogin(c, "/", "demo", state); err != nil || ret != "/" {
			t.Fatalf("before loginTTL: %q, %v; want the state", ret, err)
		}
		time.Sleep(2 * time.Minute)
		if _, err := sc.loadLogin(c, "/", "demo", state); err == nil {
			t.Fatal("a state older than loginTTL decoded")
		}
	})
}
