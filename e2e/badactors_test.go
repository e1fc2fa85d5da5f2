package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBadActors: what a hostile page or link can do to a signed-in user.
//
//	(a) a page on another origin cannot call the API through the gateway
//	    with the user's cookie: the CORS preflight (X-CSRF header) fails,
//	    and a "simple" request without the header is refused; the API sees
//	    no request;
//	(b) a link to /bff/logout without the session's sid (or with a wrong
//	    one) does not end the session;
//	(c) /bff/login?returnUrl=<somewhere else> ends on the gateway's origin.
func TestBadActors(t *testing.T) {
	s := startStack(t)
	tb := newBrowser(t).newTab()
	gw, _ := url.Parse(s.gwURL)
	idp, _ := url.Parse(s.idpURL)

	// (c), first variant, before any session: the password login.
	tb.navigate(s.gwURL + "/bff/login?returnUrl=" + url.QueryEscape("//evil.example/steal"))
	tb.signIn("alice", "wonderland")
	checkLanding(t, tb, gw, idp, "//evil.example/steal")
	if r := tb.fetch(s.gwURL + "/bff/user"); r.Status != 200 {
		t.Fatalf("/bff/user after login = %d %s, want 200", r.Status, r.Body)
	}

	// (a) another origin: same site (127.0.0.1, other port) and another
	// site (localhost).
	evil := startEvilSite(t)
	for _, origin := range []string{evil.sameSite, evil.crossSite} {
		tb.navigate(origin + "/")
		tb.waitVisible("#evil")
		withHeader := tb.fetchJS(fmt.Sprintf(`fetch(%q, {credentials: 'include', headers: {'X-CSRF': '1'}})`, s.gwURL+"/api/hello"))
		if withHeader.Status != 0 || !strings.HasPrefix(withHeader.Error, "TypeError") {
			t.Errorf("from %s: fetch /api/hello with X-CSRF = %+v, want a TypeError (CORS)", origin, withHeader)
		}
		simple := tb.fetchJS(fmt.Sprintf(`fetch(%q, {credentials: 'include'})`, s.gwURL+"/api/hello"))
		if simple.Status != 0 || !strings.HasPrefix(simple.Error, "TypeError") {
			t.Errorf("from %s: fetch /api/hello without X-CSRF = %+v, want a TypeError (CORS)", origin, simple)
		}
		user := tb.fetchJS(fmt.Sprintf(`fetch(%q, {credentials: 'include', headers: {'X-CSRF': '1'}})`, s.gwURL+"/bff/user"))
		if user.Status != 0 {
			t.Errorf("from %s: fetch /bff/user = %+v, want a TypeError (CORS)", origin, user)
		}
	}
	if reqs := s.apiRequests("/api/hello"); len(reqs) != 0 {
		t.Errorf("the API received requests from the other origins:\n%s", strings.Join(reqs, "\n"))
	}
	if n := s.metric("bffgate_http_requests_total", `route="api"`, `code="200"`); n != 0 {
		t.Errorf("the gateway answered %v API requests with 200, want 0", n)
	}

	// (b) /bff/logout without the sid, with a wrong sid, and with an empty
	// one, as a top-level navigation from the other site.
	for _, q := range []string{"", "?sid=", "?sid=not-the-sid", "?sid=" + strings.Repeat("A", 43)} {
		tb.navigate(evil.crossSite + "/")
		tb.navigateLoose(s.gwURL + "/bff/logout" + q)
		u := tb.waitURL("after /bff/logout"+q, func(u *url.URL) bool { return true })
		if u.Host == idp.Host {
			t.Errorf("/bff/logout%s sent the browser to the IdP's end_session: %s", q, u.Path)
		}
		tb.navigate(s.gwURL + "/bff/nothing-here")
		if r := tb.fetch("/bff/user"); r.Status != 200 {
			t.Fatalf("/bff/user after /bff/logout%s = %d %s, want 200 (the session must survive)", q, r.Status, r.Body)
		}
	}
	if r := tb.fetch("/api/hello"); r.Status != 200 {
		t.Errorf("/api/hello after the forged logouts = %d %s, want 200", r.Status, r.Body)
	}

	// (c) the other variants, signed in at the IdP (SSO: no login page).
	for _, ret := range []string{
		"https://evil.example/steal",
		`/\evil.example/steal`,
		"/\t/evil.example/steal",
		"https:evil.example",
		"http://" + gw.Host + "@evil.example/",
		"javascript:alert(1)",
	} {
		tb.navigateLoose(s.gwURL + "/bff/login?returnUrl=" + url.QueryEscape(ret))
		checkLanding(t, tb, gw, idp, ret)
	}
	// Unencoded in the query, as a link would carry it.
	tb.navigateLoose(s.gwURL + `/bff/login?returnUrl=/\evil.example`)
	checkLanding(t, tb, gw, idp, `/\evil.example (unencoded)`)
}

// checkLanding waits until the browser has left the IdP and the gateway's
// /bff/ endpoints after a login, and checks that it is on the gateway.
func checkLanding(t *testing.T, tb *tab, gw, idp *url.URL, returnURL string) {
	t.Helper()
	u := tb.waitURL("landing after login with returnUrl="+returnURL, func(u *url.URL) bool {
		if u.Host == idp.Host {
			return false
		}
		return !(u.Host == gw.Host && strings.HasPrefix(u.Path, "/bff/"))
	})
	if u.Scheme != "http" || u.Host != gw.Host {
		t.Errorf("returnUrl=%q: landed on %s, want the gateway's origin %s", returnURL, u, gw.Host)
		return
	}
	t.Logf("returnUrl=%q: landed on %s", returnURL, u.Path)
}

// navigateLoose navigates to u and does not fail when the page does not load
// (e.g. a redirect to a host that does not resolve): the caller checks where
// the browser is.
func (tb *tab) navigateLoose(u string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil && !errors.Is(err, chromedp.ErrPageLoad) {
		tb.fail("navigate to "+u, err)
	}
}

// evilSite is a small page on other origins than the gateway's.
type evilSite struct {
	sameSite  string // http://127.0.0.1:<port>: another origin, same site
	crossSite string // http://localhost:<port>: another site
}

func startEvilSite(t *testing.T) evilSite {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!DOCTYPE html><title>evil</title><h1 id="evil">Win a prize</h1>`)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	return evilSite{
		sameSite:  fmt.Sprintf("http://127.0.0.1:%d", port),
		crossSite: fmt.Sprintf("http://localhost:%d", port),
	}
}
