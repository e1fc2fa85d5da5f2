package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/testop"
)

// introspectNever fails the test if a token reaches introspection.
type introspectNever struct{ t *testing.T }

func (n introspectNever) Verify(context.Context, string) (tokenInfo, error) {
	n.t.Error("the token went to introspection")
	return tokenInfo{}, errInactive
}

func TestJWTAccessTokens(t *testing.T) {
	op := testop.New(t, testop.Config{})
	const resource = "urn:bffgate:demo-api"
	v := newJWTAccessTokens(context.Background(), op.URL, resource, introspectNever{t})
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": op.URL, "sub": "demo", "client_id": "demo", "aud": resource, "scope": "api:read",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "j1"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	at := testop.SignOpts{Typ: "at+jwt"}
	good := op.Sign(claims(nil), at)
	info, err := v.Verify(context.Background(), good)
	if err != nil || !info.JWT || info.ClientID != "demo" || info.Subject != "demo" || info.Audience != resource || info.Scope != "api:read" {
		t.Fatalf("Verify(client token) = %+v, %v", info, err)
	}
	bad := map[string]string{
		"another audience": op.Sign(claims(func(c map[string]any) { c["aud"] = "urn:other" }), at),
		"expired":          op.Sign(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), at),
		"an ID token":      op.Sign(claims(nil), testop.SignOpts{Typ: "JWT"}),
		"no client_id":     op.Sign(claims(func(c map[string]any) { delete(c, "client_id") }), at),
		"another issuer":   op.Sign(claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), at),
	}
	for name, tok := range bad {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, errInactive) {
			t.Errorf("%s: Verify = %v, want errInactive", name, err)
		}
	}
}

// An opaque client token (client_credentials without a resource)
// introspects without sub: its subject is the client.
func TestIntrospectionClientToken(t *testing.T) {
	in := newIntrospector(introspectorConfig{Issuer: "https://idp.example"}, nil)
	tests := []struct {
		name    string
		ir      introspectionResponse
		wantSub string // "" : inactive
	}{
		{"user token", introspectionResponse{Active: true, Subject: "alice", ClientID: "demo", TokenType: "Bearer"}, "alice"},
		{"client token", introspectionResponse{Active: true, ClientID: "demo", TokenType: "Bearer"}, "demo"},
		{"neither sub nor client", introspectionResponse{Active: true, TokenType: "Bearer"}, ""},
		{"inactive", introspectionResponse{Active: false, ClientID: "demo", TokenType: "Bearer"}, ""},
		{"a refresh token", introspectionResponse{Active: true, ClientID: "demo"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := in.check(tt.ir)
			switch {
			case tt.wantSub == "" && !errors.Is(err, errInactive):
				t.Errorf("check = %+v, %v; want errInactive", info, err)
			case tt.wantSub != "" && (err != nil || info.Subject != tt.wantSub):
				t.Errorf("check = %+v, %v; want sub %q", info, err, tt.wantSub)
			}
		})
	}
}
