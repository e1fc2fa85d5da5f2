package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bffgate/bffgate/internal/testop"
)

// TestDownstreamReceivesValidLogoutToken runs the whole gateway: a user
// signs in and calls the API, the IdP logs them out through the
// back-channel, and the API's own back-channel endpoint receives a
// logout token that it validates with go-oidc against the gateway's
// discovery document. A second downstream the session never used is not
// told.
func TestDownstreamReceivesValidLogoutToken(t *testing.T) {
	op := testop.New(t, testop.Config{})
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	op.SetRedirectURL(public + "/bff/callback")

	received := make(chan string, 10)
	unused := make(chan string, 10)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logout" {
			r.ParseForm()
			received <- r.PostForm.Get("logout_token")
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	defer api.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		unused <- r.PostForm.Get("logout_token")
	}))
	defer other.Close()

	path := testConfig{
		op: op, listen: listen, admin: admin,
		app: fmt.Sprintf(`  [[apps.apis]]
  path = "/api/"
  upstream = %q
  [[apps.downstream]]
  backchannel_logout_uri = "%s/logout"
  audience = "demo-api"
  [[apps.downstream]]
  backchannel_logout_uri = "%s/logout"
  audience = "never-used"
  api = "/other/"
  [[apps.apis]]
  path = "/other/"
  upstream = %q`, api.URL, api.URL, other.URL, other.URL),
		tables: "[notifier]\nbase_delay = \"10ms\"",
	}.write(t)

	startRun(t, path, admin, io.Discard)
	ctx := context.Background()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	resp, err := browser.Get(public + "/bff/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, public+"/api/hello", nil)
	req.Header.Set("X-CSRF", "1")
	if resp, err = browser.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API call: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	lt := op.Sign(op.LogoutToken(nil), testop.SignOpts{})
	resp, err = http.Post(public+"/bff/backchannel-logout", "application/x-www-form-urlencoded", bytes.NewBufferString(url.Values{"logout_token": {lt}}.Encode()))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	var token string
	select {
	case token = <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("the downstream API received no logout token")
	}
	provider, err := oidc.NewProvider(ctx, public)
	if err != nil {
		t.Fatalf("discover the gateway: %v", err)
	}
	lo, err := provider.VerifierContext(ctx, &oidc.Config{ClientID: "demo-api"}).VerifyLogout(ctx, token)
	if err != nil {
		t.Fatalf("go-oidc rejects the gateway's logout token: %v", err)
	}
	if lo.Subject != "alice" || lo.SessionID != op.LastSID() || lo.Issuer != public {
		t.Errorf("token sub %q sid %q iss %q, want alice, the IdP's sid and the gateway", lo.Subject, lo.SessionID, lo.Issuer)
	}
	select {
	case <-unused:
		t.Error("a downstream whose API the session never called was told (notify = if_used)")
	case <-time.After(300 * time.Millisecond):
	}
}
