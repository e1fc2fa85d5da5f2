package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// With TrustForwarded (the caller removed these headers from untrusted
// peers), the X-Forwarded-For chain is rebuilt from its trimmed,
// non-empty values, not concatenated from raw lines, and a forwarded
// host is kept; otherwise the host is ForwardedHost, not the client's.
func TestForwardedChain(t *testing.T) {
	up := newEchoUpstream(t)
	tests := []struct {
		name    string
		trust   bool
		fwdHost string
		xff     []string
		xfh     string
		wantXFF string
		wantXFH string
	}{
		{name: "empty line first", trust: true, xff: []string{"", "1.2.3.4"}, wantXFF: "1.2.3.4, 192.0.2.7", wantXFH: "app.example"},
		{name: "blanks and spaces", trust: true, xff: []string{" 5.6.7.8 ,, ", " ,1.2.3.4"}, wantXFF: "5.6.7.8, 1.2.3.4, 192.0.2.7", wantXFH: "app.example"},
		{name: "only blanks", trust: true, xff: []string{" ", ","}, wantXFF: "192.0.2.7", wantXFH: "app.example"},
		{name: "trusted host", trust: true, fwdHost: "public.example", xfh: "lb.example", wantXFF: "192.0.2.7", wantXFH: "lb.example"},
		{name: "public host", trust: true, fwdHost: "public.example", wantXFF: "192.0.2.7", wantXFH: "public.example"},
		{name: "untrusted", fwdHost: "public.example", xff: []string{"6.6.6.6"}, xfh: "evil.example", wantXFF: "192.0.2.7", wantXFH: "public.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, up.URL, staticTokens{token: "at-1"}, nil, func(c *Config) {
				c.TrustForwarded = tt.trust
				c.ForwardedHost = tt.fwdHost
			})
			req := httptest.NewRequest(http.MethodGet, "http://app.example/api/", nil)
			req.RemoteAddr = "192.0.2.7:51234"
			req.Header["X-Forwarded-For"] = tt.xff
			if tt.xfh != "" {
				req.Header.Set("X-Forwarded-Host", tt.xfh)
			}
			got := decodeSeen(t, serve(p, req, validSession())).Header
			if v := got.Values("X-Forwarded-For"); len(v) != 1 || v[0] != tt.wantXFF {
				t.Errorf("upstream X-Forwarded-For = %q, want [%s]", v, tt.wantXFF)
			}
			if v := got.Values("X-Forwarded-Host"); len(v) != 1 || v[0] != tt.wantXFH {
				t.Errorf("upstream X-Forwarded-Host = %q, want [%s]", v, tt.wantXFH)
			}
		})
	}
}
