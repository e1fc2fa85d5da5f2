package bff

import "testing"

func TestOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://idp.example.com", "https://idp.example.com"},
		{"https://idp.example.com/realms/x?a=1#f", "https://idp.example.com"},
		{"http://127.0.0.1:9000/", "http://127.0.0.1:9000"},
		{"HTTPS://idp.example.com:8443/x", "https://idp.example.com:8443"},
		{"https://user:pass@idp.example.com/x", "https://idp.example.com"},
		{"https://idp.example.com?x=//evil", "https://idp.example.com"},
		{"/relative/path", ""},
		{"idp.example.com", ""},
		{"", ""},
		{"https://", ""},
	}
	for _, tt := range tests {
		if got := origin(tt.in); got != tt.want {
			t.Errorf("origin(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
