package main

import (
	"strings"
	"testing"
)

// TestCheckConfigFrontchannelSIDOnly: -check-config accepts
// frontchannel_sid_only as a boolean and names the key when it is not one.
func TestCheckConfigFrontchannelSIDOnly(t *testing.T) {
	tests := []struct {
		name, line, wantErr string
	}{
		{"true", "frontchannel_sid_only = true", ""},
		{"a string", `frontchannel_sid_only = "yes"`, "frontchannel_sid_only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testConfig{scheme: "https", app: tt.line}.write(t)
			_, err := runCheckConfig(t, path, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want the config accepted", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
