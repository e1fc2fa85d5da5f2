package bff

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// spoofable are the headers by which a client could claim another
// address, scheme, host or path to the upstream (or to this gateway).
var spoofable = map[string][]string{
	"X-Forwarded-For":    {"", "6.6.6.6"},
	"X-Forwarded-Host":   {"evil.example"},
	"X-Forwarded-Proto":  {"https"},
	"X-Forwarded-Port":   {"8443"},
	"X-Forwarded-Prefix": {"/admin"},
	"X-Forwarded-Server": {"evil.example"},
	"X-Real-Ip":          {"6.6.6.6"},
	"X-Original-Url":     {"/admin"},
	"X-Rewrite-Url":      {"/admin"},
	"Forwarded":          {"for=6.6.6.6;host=evil.example;proto=https"},
	"True-Client-Ip":     {"6.6.6.6"},
	"X-Client-Ip":        {"6.6.6.6"},
}

// forwardedTo sends a frontend request with the spoofable headers and
// Host evil.example through a gateway with these trusted proxies and
// returns the headers the frontend got.
func forwardedTo(t *testing.T, trusted []string, edit func(http.Header)) (http.Header, *harness) {
	t.Helper()
	seen := make(chan http.Header, 1)
	frontend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	t.Cleanup(frontend.Close)
	h := newHarness(t, harnessOpts{
		mutate: func(a *AppConfig) { a.Frontend = frontend.URL },
		server: func(s *ServerConfig) { s.TrustedProxies = trusted },
	})
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/page", nil)
	req.Host = "evil.example"
	for k, v := range spoofable {
		req.Header[k] = v
	}
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	return <-seen, h
}

func TestForwardedFromUntrustedPeer(t *testing.T) {
	for name, trusted := range map[string][]string{"no trusted proxies": nil, "peer not trusted": {"10.0.0.0/8"}} {
		t.Run(name, func(t *testing.T) {
			got, h := forwardedTo(t, trusted, nil)
			public, _ := url.Parse(h.srv.URL)
			want := map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Host":  public.Host,
				"X-Forwarded-Proto": "http",
			}
			for k := range spoofable {
				v := got.Values(k)
				if w, ok := want[k]; ok && (len(v) != 1 || v[0] != w) || !ok && len(v) != 0 {
					t.Errorf("upstream %s = %q, want %q", k, v, want[k])
				}
			}
		})
	}
}

func TestForwardedFromTrustedPeer(t *testing.T) {
	got, h := forwardedTo(t, []string{"127.0.0.0/8"}, nil)
	want := map[string]string{
		"X-Forwarded-For":   "6.6.6.6, 127.0.0.1", // rebuilt: the empty line is no hop
		"X-Forwarded-Host":  "evil.example",       // the proxy's word
		"X-Forwarded-Proto": "https",
		"X-Real-Ip":         "6.6.6.6",
		"X-Forwarded-Port":  "8443",
	}
	for k, w := range want {
		if v := got.Values(k); len(v) != 1 || v[0] != w {
			t.Errorf("upstream %s = %q, want [%s]", k, v, w)
		}
	}
	// A trusted proxy that sets no X-Forwarded-Host: the public host, not
	// the client's Host.
	got, h = forwardedTo(t, []string{"127.0.0.0/8"}, func(hd http.Header) { hd.Del("X-Forwarded-Host") })
	public, _ := url.Parse(h.srv.URL)
	if v := got.Get("X-Forwarded-Host"); v != public.Host {
		t.Errorf("upstream X-Forwarded-Host = %q, want %s", v, public.Host)
	}
}

func TestAddressChain(t *testing.T) {
	tests := []struct {
		lines []string
		want  string
		same  bool
	}{
		{[]string{"1.2.3.4, 10.0.0.1"}, "1.2.3.4, 10.0.0.1", true},
		{[]string{"", "1.2.3.4"}, "1.2.3.4", false},
		{[]string{" 1.2.3.4 ,, ", ",10.0.0.1"}, "1.2.3.4, 10.0.0.1", false},
		{[]string{"[2001:db8::1]", "1.2.3.4:5678", "[2001:db8::2]:443"}, "2001:db8::1, 1.2.3.4, 2001:db8::2", false},
		{[]string{"unknown, 1.2.3.4", "evil.example"}, "1.2.3.4", false},
		{[]string{" ", ","}, "", false},
	}
	for _, tt := range tests {
		if got, same := addressChain(tt.lines); got != tt.want || same != tt.same {
			t.Errorf("addressChain(%q) = %q, %v; want %q, %v", tt.lines, got, same, tt.want, tt.same)
		}
	}
}

func TestForwardingHeader(t *testing.T) {
	for k, want := range map[string]bool{
		"X-Forwarded-For": true, "X_Forwarded_For": true, "x-forwarded-anything": true, "X-Original-Url": true,
		"X_Real_IP": true, "Forwarded": true, "X-Rewrite-Url": true, "True-Client-Ip": true,
		"X-Forwarded-": false, "X-Request-Id": false, "Accept": false, "X-Csrf": false, "Forwarded-X": false,
	} {
		if got := forwardingHeader(k); got != want {
			t.Errorf("forwardingHeader(%q) = %v, want %v", k, got, want)
		}
	}
}
