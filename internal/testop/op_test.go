package testop_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

const redirect = "https://rp.example/bff/callback"

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// login runs /authorize and returns the redirect's query.
func login(t *testing.T, conf *oauth2.Config, verifier string) url.Values {
	t.Helper()
	u := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n0"))
	resp, err := noFollow.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize status = %d, want 302", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query()
}

func TestLoginRefreshRevoke(t *testing.T) {
	op := testop.New(t, testop.Config{RedirectURL: redirect})
	op.SetUser("bob", map[string]any{"groups": []string{"admins"}})
	ctx := context.Background()
	p, err := oidc.NewProvider(ctx, op.URL)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: op.ClientID(), ClientSecret: op.ClientSecret(),
		Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: []string{"openid"}}
	verifier := oauth2.GenerateVerifier()
	q := login(t, conf, verifier)
	if q.Get("state") != "st" || q.Get("code") == "" || q.Get("session_state") == "" {
		t.Fatalf("callback query = %v, want state, code and session_state", q)
	}
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption("wrong")); err == nil {
		t.Fatal("exchange with a wrong code_verifier succeeded")
	}
	q = login(t, conf, verifier)
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("second use of a code succeeded")
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: op.ClientID()}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	var claims struct {
		SID    string   `json:"sid"`
		Groups []string `json:"groups"`
	}
	_ = idt.Claims(&claims)
	if idt.Subject != "bob" || idt.Nonce != "n0" || claims.SID != op.LastSID() || len(claims.Groups) != 1 {
		t.Errorf("id token sub=%q nonce=%q sid=%q groups=%v, want bob, n0, %q, [admins]",
			idt.Subject, idt.Nonce, claims.SID, claims.Groups, op.LastSID())
	}
	if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Errorf("userinfo: %v", err)
	}

	tok.Expiry = tok.Expiry.Add(-2 * op.AccessTokenTTL())
	fresh, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || fresh.RefreshToken == tok.RefreshToken || op.RefreshCount() != 1 {
		t.Fatalf("refresh: err=%v rotated=%v count=%d, want nil, true, 1",
			err, fresh != nil && fresh.RefreshToken != tok.RefreshToken, op.RefreshCount())
	}
	op.FailRefresh(true)
	fresh.Expiry = tok.Expiry
	if _, err := conf.TokenSource(ctx, fresh).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh with FailRefresh: err = %v, want invalid_grant", err)
	}

	form := url.Values{"token": {fresh.RefreshToken}}
	req, _ := http.NewRequest(http.MethodPost, op.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(op.ClientID(), op.ClientSecret())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", err, resp)
	}
	resp.Body.Close()
	if got := op.Revoked(); len(got) != 1 || got[0] != fresh.RefreshToken {
		t.Errorf("Revoked() = %v, want the refresh token", got)
	}
}

func TestFailNextAuthorize(t *testing.T) {
	op := testop.New(t, testop.Config{})
	op.SetRedirectURL(redirect)
	op.FailNextAuthorize("access_denied")
	conf := &oauth2.Config{ClientID: op.ClientID(), RedirectURL: redirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: op.URL + "/authorize"}}
	q := login(t, conf, oauth2.GenerateVerifier())
	if q.Get("error") != "access_denied" || q.Get("state") != "st" || q.Get("code") != "" {
		t.Errorf("query = %v, want error=access_denied with state and no code", q)
	}
	if q = login(t, conf, oauth2.GenerateVerifier()); q.Get("code") == "" {
		t.Errorf("second authorize = %v, want a code", q)
	}
}

func TestEndSession(t *testing.T) {
	op := testop.New(t, testop.Config{})
	u := op.URL + "/end_session?id_token_hint=x&post_logout_redirect_uri=" +
		url.QueryEscape("https://rp.example/bff/signed-out") + "&state=s1"
	resp, err := noFollow.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "https://rp.example/bff/signed-out?state=s1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if reqs := op.EndSessionRequests(); len(reqs) != 1 || reqs[0].Get("id_token_hint") != "x" {
		t.Errorf("EndSessionRequests() = %v", reqs)
	}
}

func TestSignAndJWKS(t *testing.T) {
	op := testop.New(t, testop.Config{})
	ks := oidc.NewRemoteKeySet(context.Background(), op.JWKSURL())
	for _, alg := range []string{"RS256", "ES256", "PS256"} {
		raw := op.Sign(op.LogoutToken(nil), testop.SignOpts{Alg: alg, Typ: "logout+jwt"})
		if _, err := ks.VerifySignature(context.Background(), raw); err != nil {
			t.Errorf("%s: VerifySignature: %v", alg, err)
		}
	}
	if got := op.JWKSFetches(); got != 1 {
		t.Errorf("JWKSFetches() = %d, want 1", got)
	}
	hs := op.Sign(op.LogoutToken(nil), testop.SignOpts{Alg: "HS256"})
	jws, err := jose.ParseSignedCompact(hs, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(op.ClientSecret())); err != nil {
		t.Errorf("HS256 verify with the client secret: %v", err)
	}
	for _, alg := range []string{"none", "NoNe"} {
		raw := op.Sign(map[string]any{"a": 1}, testop.SignOpts{Alg: alg})
		if !strings.HasSuffix(raw, ".") || strings.Count(raw, ".") != 2 {
			t.Errorf("alg %s token = %q, want an empty signature", alg, raw)
		}
	}
}
