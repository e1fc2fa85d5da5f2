package upstream

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr string // substring; empty means valid
	}{
		{name: "http", raw: "http://127.0.0.1:4000"},
		{name: "https with path", raw: "https://api.example.com/v1/"},
		{name: "relative", raw: "/api", wantErr: "scheme must be http or https"},
		{name: "no host", raw: "http:///x", wantErr: "must be an absolute URL with a host"},
		{name: "ftp", raw: "ftp://example.com", wantErr: "scheme must be http or https"},
		{name: "userinfo", raw: "http://user:secret@example.com", wantErr: "must not contain userinfo"},
		{name: "query", raw: "http://example.com/?a=b", wantErr: "must not contain a query"},
		{name: "empty query", raw: "http://example.com/?", wantErr: "must not contain a query"},
		{name: "fragment", raw: "http://example.com/#x", wantErr: "must not contain a fragment"},
		{name: "unparsable", raw: "http://[::1", wantErr: "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget("api", tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseTarget(%q) error = %v, want nil", tt.raw, err)
				}
				if got.Name != "api" || got.URL.String() != tt.raw {
					t.Errorf("ParseTarget(%q) = {%q, %v}, want {api, %s}", tt.raw, got.Name, got.URL, tt.raw)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseTarget(%q) error = %v, want containing %q", tt.raw, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q reveals the URL's credentials", err)
			}
		})
	}
}

func TestParseTargetNoName(t *testing.T) {
	if _, err := ParseTarget("", "http://example.com"); err == nil {
		t.Fatal("ParseTarget with empty name: error = nil, want an error")
	}
}
