package logout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/logout"
)

// idpShape is the logout token an IdP sends, as its source builds it
// (docs/interop.md cites each): header typ, claims to drop and to set.
type idpShape struct {
	typ  string
	drop []string
	set  func(op *testop.OP, c map[string]any)
}

func (s idpShape) mint(op *testop.OP) string {
	return op.Sign(op.LogoutToken(func(c map[string]any) {
		for _, k := range s.drop {
			delete(c, k)
		}
		if s.set != nil {
			s.set(op, c)
		}
	}), testop.SignOpts{Typ: s.typ})
}

var idpShapes = map[string]idpShape{
	// keycloak/keycloak TokenManager.initLogoutToken: exp = iat + 2 min,
	// aud the client, sub, sid (with "Backchannel logout session
	// required"), and "revoke_offline_access": true inside events when the
	// client revokes offline sessions; DefaultTokenManager.encode signs
	// with typ "JWT" (newer releases define logout+jwt in TokenUtil).
	"keycloak": {typ: "JWT", set: func(op *testop.OP, c map[string]any) {
		c["exp"] = time.Now().Add(2 * time.Minute).Unix()
		c["events"] = map[string]any{testop.BackchannelLogoutEvent: map[string]any{}, "revoke_offline_access": true}
	}},
	// ory/hydra consent/strategy_default.go executeBackChannelLogout: iss,
	// aud [client_id], iat, jti, events, sid; no exp, no sub. fosite's
	// jwt package sets typ "JWT".
	"hydra": {typ: "JWT", drop: []string{"exp", "sub"}, set: func(op *testop.OP, c map[string]any) {
		c["aud"] = []string{op.ClientID()}
	}},
	// dexidp/dex server/backchannel/backchannel.go: iss, sub, aud (a
	// string), iat, exp = iat + 2 min, jti, sid, events; signed by go-jose
	// with no typ (server/signer/utils.go).
	"dex": {},
	// DuendeSoftware IdentityServer DefaultBackChannelLogoutService: typ
	// logout+jwt (LogoutTokenJwtType), lifetime 5 min, aud the client, sub
	// and sid, plus logout_reason.
	"duende": {typ: "logout+jwt", set: func(op *testop.OP, c map[string]any) {
		c["exp"] = time.Now().Add(5 * time.Minute).Unix()
		c["logout_reason"] = "user_logout"
	}},
	// zitadel/zitadel internal/notification/handlers/back_channel_logout.go
	// (oidc.NewLogoutTokenClaims: iss, sub, aud [client_id], iat, exp,
	// jti, events, sid) and docs/docs/guides/integrate/back-channel-logout.mdx:
	// exp 15 min after iat by default, header typ "JWT".
	"zitadel": {typ: "JWT", set: func(op *testop.OP, c map[string]any) {
		c["exp"] = time.Now().Add(15 * time.Minute).Unix()
		c["aud"] = []string{op.ClientID()}
	}},
	// panva/node-oidc-provider lib/models/id_token.js (9.x): typ
	// logout+jwt, expiresIn 120, aud the client, sub, sid.
	"oidc-provider 9": {typ: "logout+jwt"},
	// node-oidc-provider 6.31.1 (e2e/idp6): typ JWT, no exp.
	"oidc-provider 6": {typ: "JWT", drop: []string{"exp"}},
}

// TestIdPLogoutTokens: each IdP's logout token, as its source builds
// it, is accepted with the settings docs/interop.md gives for that IdP,
// and refused (naming the switch) without them where the spec requires
// it: Hydra and oidc-provider 6 send no exp (REQUIRED since errata 1).
func TestIdPLogoutTokens(t *testing.T) {
	op := testop.New(t, testop.Config{})
	allowNoExp := func(c *logout.VerifierConfig) { c.AllowMissingExp = true }
	requireTyp := func(c *logout.VerifierConfig) { c.RequireTyp = true }
	tests := []struct {
		idp        string
		cfg        func(*logout.VerifierConfig)
		wantReason string
		wantSwitch string
	}{
		{idp: "keycloak"},
		{idp: "keycloak", cfg: requireTyp, wantReason: "typ", wantSwitch: "logout_typ"},
		{idp: "keycloak", cfg: func(c *logout.VerifierConfig) { c.ExpectedTyp = "JWT" }},
		{idp: "hydra", cfg: allowNoExp},
		{idp: "hydra", wantReason: "exp_missing", wantSwitch: "allow_missing_exp"},
		{idp: "dex"},
		{idp: "dex", cfg: requireTyp, wantReason: "typ", wantSwitch: "require_logout_typ"},
		{idp: "duende", cfg: requireTyp},
		{idp: "zitadel"},
		{idp: "zitadel", cfg: requireTyp, wantReason: "typ", wantSwitch: "logout_typ"},
		{idp: "zitadel", cfg: func(c *logout.VerifierConfig) { c.ExpectedTyp = "JWT" }},
		{idp: "oidc-provider 9", cfg: requireTyp},
		{idp: "oidc-provider 6", cfg: allowNoExp},
		{idp: "oidc-provider 6", wantReason: "exp_missing", wantSwitch: "allow_missing_exp"},
	}
	for _, tt := range tests {
		name := tt.idp + "/" + map[bool]string{true: "accepted", false: "rejected " + tt.wantReason}[tt.wantReason == ""]
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, op, tt.cfg)
			_, err := v.Verify(context.Background(), idpShapes[tt.idp].mint(op))
			if got := reason(err); got != tt.wantReason {
				t.Fatalf("got %q (%v), want %q", got, err, tt.wantReason)
			}
			if got := switchOf(err); got != tt.wantSwitch {
				t.Errorf("switch = %q, want %q", got, tt.wantSwitch)
			}
		})
	}
}

// TestIssuerTrailingSlash: some IdPs' issuer ends in a slash (Hydra's
// default http://127.0.0.1:4444/); iss is compared exactly, so issuer
// must be written as the IdP reports it.
func TestIssuerTrailingSlash(t *testing.T) {
	op := testop.New(t, testop.Config{})
	tok := op.Sign(op.LogoutToken(set("iss", op.URL+"/")), testop.SignOpts{})
	for _, tt := range []struct {
		issuer, want string
	}{
		{op.URL + "/", ""},
		{op.URL, "iss"},
	} {
		v := newVerifier(t, op, func(c *logout.VerifierConfig) { c.Issuer = tt.issuer })
		if _, err := v.Verify(context.Background(), tok); reason(err) != tt.want {
			t.Errorf("issuer %q: got %v, want %q", tt.issuer, err, tt.want)
		}
	}
}

// switchOf is the Switch of a *ValidationError, or "".
func switchOf(err error) string {
	var ve *logout.ValidationError
	if errors.As(err, &ve) {
		return ve.Switch
	}
	return ""
}
