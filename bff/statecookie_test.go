package bff

import (
	"net/http"
	"net/http/httptest"
	"reflect"
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
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != int(loginTTL/time.Second) {
		t.Errorf("cookie %s: want HttpOnly, Secure, SameSite=Lax, Path=/ and Max-Age %v", ck, loginTTL)
	}
	if name[:7] != "__Host-" {
		t.Errorf("name %q, want the __Host- prefix over https", name)
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
	// A login's state is not a logout's: the names differ.
	if sc.loginName("state-1") == name {
		t.Error("login and logout state share a cookie name")
	}
}

func TestStateCookieExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newStateCookies(testSecret, false)
		name := sc.loginName("s")
		req, _ := roundTrip(t, sc, name, loginState{App: "demo", Nonce: "n", Verifier: "v", Return: "/", At: time.Now().Unix()})
		time.Sleep(loginTTL - time.Minute)
		var ls loginState
		if err := sc.load(req, name, &ls); err != nil || ls.Verifier != "v" {
			t.Fatalf("before loginTTL: %+v, %v; want the state", ls, err)
		}
		time.Sleep(2 * time.Minute)
		if err := sc.load(req, name, &ls); err == nil {
			t.Fatal("a state older than loginTTL decoded")
		}
	})
}
