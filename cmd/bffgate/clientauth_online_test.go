package main

import (
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// TestCheckConfigOnlineClientAuth: -check-config -online checks the
// client authentication the gateway will use (configured, or chosen from
// discovery as at run time) against the IdP's lists for the token and the
// revocation endpoint.
func TestCheckConfigOnlineClientAuth(t *testing.T) {
	keyFile := ecKeyFile(t)
	tests := []struct {
		name  string
		op    testop.Config
		extra string
		want  string // "" means valid
	}{
		{"configured method not listed", testop.Config{TokenAuthMethods: []string{"client_secret_basic"}},
			`token_endpoint_auth_method = "client_secret_post"`,
			"apps[0].token_endpoint_auth_method: the client is set to client_secret_post, which the IdP does not accept at its token endpoint (token_endpoint_auth_methods_supported: client_secret_basic)"},
		{"no secret method listed", testop.Config{TokenAuthMethods: []string{"private_key_jwt"}}, "",
			"apps[0].client_secret: the client can only use client_secret_basic, which the IdP does not accept at its token endpoint"},
		{"revocation method not listed", testop.Config{RevocationAuthMethods: []string{"private_key_jwt"}},
			`token_endpoint_auth_method = "client_secret_basic"`,
			"apps[0].token_endpoint_auth_method: the client is set to client_secret_basic, which the IdP does not accept at its revocation endpoint (revocation_endpoint_auth_methods_supported: private_key_jwt)"},
		{"revocation chosen from its own list", testop.Config{RevocationAuthMethods: []string{"client_secret_post"}}, "", ""},
		{"private_key_jwt listed", testop.Config{TokenAuthMethods: []string{"client_secret_basic", "private_key_jwt"}},
			`client_assertion_key_file = "` + keyFile + `"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := testop.New(t, tt.op)
			path := onlineConfig(t, op.URL, op.ClientID(), tt.extra)
			_, err := runCheckConfig(t, path, nil, "-online")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("-online: %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("-online err = %v, want %q", err, tt.want)
			}
		})
	}
}
