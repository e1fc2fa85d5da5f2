package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCheckConfigFrontchannelSIDOnly: -check-config accepts
// frontchannel_sid_only as a boolean and names the key when it is not one.
func TestCheckConfigFrontchannelSIDOnly(t *testing.T) {
	const base = `
[server]
public_url = "https://gw.example"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[apps]]
name = "demo"
issuer = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"
client_id = "demo"
frontend = "http://127.0.0.1:3000"
`
	tests := []struct {
		name, line, wantErr string
	}{
		{"true", "frontchannel_sid_only = true", ""},
		{"a string", `frontchannel_sid_only = "yes"`, "frontchannel_sid_only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, base+tt.line+"\n")
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"bffgate", "-config", path, "-check-config"}, env(nil), &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want the config accepted", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
