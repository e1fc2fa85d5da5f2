package session

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestCookieValuesMatchNetHTTP checks that the by-name scan of Decode
// finds exactly the values net/http's Request.CookiesNamed finds.
func TestCookieValuesMatchNetHTTP(t *testing.T) {
	const name = "bffgate-demo"
	lines := [][]string{
		nil,
		{""},
		{"bffgate-demo=abc"},
		{"a=1; bffgate-demo=abc; b=2"},
		{"  bffgate-demo = abc ;  ; bffgate-demo=def"},
		{`bffgate-demo="quoted"`, `bffgate-demo="`, `bffgate-demo=""`},
		{"bffgate-demo=bad value\\x", "bffgate-demo=ok", "bffgate-demo=semi\"colon"},
		{"bffgate-demox=1; xbffgate-demo=2; bffgate-Demo=3; bffgate-demo"},
		{"bffgate-demo=a=b=c;bffgate-demo=\x7f", "other=1", "bffgate-demo=last"},
		{"bffgate-demo=\tabc", "bffgate-demo=abc\t ; bffgate-demo= "},
	}
	for _, l := range lines {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Cookie"] = l
		var want []string
		for _, ck := range r.CookiesNamed(name) {
			want = append(want, ck.Value)
		}
		got := slices.Collect(cookieValues(r.Header, name))
		if !slices.Equal(got, want) {
			t.Errorf("Cookie %q: got %q, want %q (net/http)", l, got, want)
		}
	}
}

// TestDecodeCachedAllocs guards the hot path of the session cookie: a
// value verified before is found by name among the request's other
// cookies without allocating (no cookie parsing, no cache key built).
func TestDecodeCachedAllocs(t *testing.T) {
	c := newTestCodec(t, true)
	ck, err := c.Encode("demo", "session-id")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "theme=dark; _ga=GA1.2.3; "+ck.Name+"="+ck.Value+"; lang=en")
	name := c.Name("demo")
	if id, err := c.DecodeNamed(r, name); err != nil || id != "session-id" {
		t.Fatalf("DecodeNamed = %q, %v", id, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.DecodeNamed(r, name) }); n != 0 {
		t.Errorf("DecodeNamed of a verified cookie: %v allocs, want 0", n)
	}
}

// TestDecodeCachedValueOtherName: a verified value replayed under
// another app's cookie name is not taken from the cache; its MAC, bound
// to the name, fails.
func TestDecodeCachedValueOtherName(t *testing.T) {
	c := newTestCodec(t, false)
	ck, err := c.Encode("a", "session-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(request(ck), "a"); err != nil {
		t.Fatal(err)
	}
	moved := &http.Cookie{Name: c.Name("b"), Value: ck.Value}
	if id, err := c.Decode(request(moved), "b"); err == nil {
		t.Fatalf("app a's cookie value decoded as app b's: %q", id)
	}
}
