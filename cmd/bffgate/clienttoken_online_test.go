package main

import (
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// TestCheckConfigOnlineClientCredentials: -check-config -online warns
// when an API needs the client-credentials grant that the IdP does not
// list in grant_types_supported.
func TestCheckConfigOnlineClientCredentials(t *testing.T) {
	const api = `
  [[apps.apis]]
  path = "/api/"
  upstream = "http://127.0.0.1:4000"
  token = "user_or_client"
`
	const warning = `warning: apps[0].apis[0].token: the IdP does not list client_credentials in grant_types_supported: "user_or_client" needs it`
	for _, tt := range []struct {
		name   string
		grants []string
		warn   bool
	}{
		{"listed", []string{"authorization_code", "client_credentials"}, false},
		{"not listed", []string{"authorization_code", "refresh_token"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op := testop.New(t, testop.Config{GrantTypes: tt.grants})
			out, err := runCheckConfig(t, onlineConfig(t, op.URL, op.ClientID(), api), nil, "-online")
			if err != nil {
				t.Fatalf("-online: %v, want valid", err)
			}
			if got := strings.Contains(out, warning); got != tt.warn {
				t.Errorf("warning printed = %v, want %v; output:\n%s", got, tt.warn, out)
			}
		})
	}
}
