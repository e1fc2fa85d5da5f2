package main

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/dpop"
)

// TestCheckDPoP: a bound token needs the DPoP scheme and a fresh proof
// of its key for this request; an unbound one must not claim DPoP.
func TestCheckDPoP(t *testing.T) {
	key, _ := dpop.NewKey()
	other, _ := dpop.NewKey()
	u, _ := url.Parse("http://api.test/api/hello")
	bound := tokenInfo{Subject: "alice", JKT: key.Thumbprint()}
	proof := func(k *dpop.Key, tok string) string { p, _ := k.Proof("GET", u, tok, "", time.Now()); return p }
	good := proof(key, "tok")
	cases := []struct {
		name, scheme, proof string
		tok                 tokenInfo
		ok                  bool
	}{
		{"bound, valid proof", "dpop", good, bound, true},
		{"the same proof again (jti)", "dpop", good, bound, false},
		{"bound, as a bearer", "bearer", "", bound, false},
		{"bound, no proof", "dpop", "", bound, false},
		{"bound, another key", "dpop", proof(other, "tok"), bound, false},
		{"bound, proof for another token", "dpop", proof(key, "other"), bound, false},
		{"unbound, bearer", "bearer", "", tokenInfo{Subject: "alice"}, true},
		{"unbound, DPoP scheme", "dpop", proof(key, "tok"), tokenInfo{Subject: "alice"}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "http://api.test/api/hello?x=1", nil)
		if c.proof != "" {
			r.Header.Set("DPoP", c.proof)
		}
		err := checkDPoP(r, c.scheme, "tok", c.tok)
		if got := err == nil; got != c.ok || (err != nil && !errors.Is(err, errDPoP)) {
			t.Errorf("%s: got %v, want ok %v", c.name, err, c.ok)
		}
	}
}
