package main

import (
	"testing"
)

// TestCheckConfigFAPI2: -check-config refuses what contradicts profile =
// "fapi2", each problem at its key (an explicit dpop = false included,
// which the profile's defaults would otherwise hide); the profile with a
// private_key_jwt key passes.
func TestCheckConfigFAPI2(t *testing.T) {
	keyFile := ecKeyFile(t)
	withKey := "profile = \"fapi2\"\nclient_assertion_key_file = \"" + keyFile + "\"\n"
	tests := []struct {
		name  string
		lines string
		want  []string
	}{
		{"dpop false", withKey + "dpop = false", []string{`apps[0].dpop: is false, but profile = "fapi2" requires DPoP`}},
		{"par off", withKey + `par = "off"`, []string{`apps[0].par: is "off", but profile = "fapi2" requires pushed authorization requests`}},
		{"no key", `profile = "fapi2"`, []string{`apps[0].client_assertion_key_file: profile = "fapi2" requires private_key_jwt`}},
		{"RS256", withKey + `id_token_signing_algs = ["RS256"]`, []string{`apps[0].id_token_signing_algs[0]: RS256 is not allowed by profile = "fapi2"`}},
		{"valid", withKey + "dpop = true", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testConfig{scheme: "https", app: tt.lines}.write(t)
			if len(tt.want) == 0 {
				if _, err := runCheckConfig(t, path, nil); err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			wantProblems(t, path, tt.want...)
		})
	}
}
