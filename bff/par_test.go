package bff

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// loginRedirect starts a login and returns where the gateway sends the
// browser.
func (h *harness) loginRedirect(c *http.Client, path string) *http.Response {
	h.t.Helper()
	resp := h.get(c, path)
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("%s = %d (%s), want 302 to the IdP", path, resp.StatusCode, body(h.t, resp))
	}
	return resp
}

// TestPARLogin: the login pushes its authorization request when par and
// discovery say so, and the browser's URL then carries only client_id
// and request_uri.
func TestPARLogin(t *testing.T) {
	tests := []struct {
		name string
		op   testop.Config
		par  string
		used bool
	}{
		{name: "auto, advertised", op: testop.Config{PAR: true}, par: "auto", used: true},
		{name: "default is auto", op: testop.Config{PAR: true}, par: "", used: true},
		{name: "auto, absent", par: "auto", used: false},
		{name: "required", op: testop.Config{PAR: true}, par: "required", used: true},
		{name: "off, advertised", op: testop.Config{PAR: true}, par: "off", used: false},
		{name: "auto, the IdP requires it", op: testop.Config{RequirePAR: true}, par: "auto", used: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{op: tt.op, mutate: func(a *AppConfig) { a.PAR = tt.par }})
			c := h.browser()
			loc, _ := h.loginRedirect(c, "/bff/login").Location()
			q := loc.Query()
			if !strings.HasPrefix(loc.String(), h.op.URL+"/authorize?") {
				t.Fatalf("login redirects to %s, want the authorization endpoint", loc)
			}
			if tt.used {
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range q {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(keys, []string{"client_id", "request_uri"}) || q.Get("client_id") != h.op.ClientID() {
					t.Errorf("browser URL %s: parameters %q, want only client_id and request_uri", loc, keys)
				}
				for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "scope"} {
					if q.Has(k) {
						t.Errorf("browser URL carries %s", k)
					}
				}
			} else if q.Has("request_uri") || q.Get("state") == "" || q.Get("code_challenge") == "" {
				t.Errorf("browser URL %s: want the authorization request in it, without request_uri", loc)
			}
			if got, want := h.op.PARCalls(), map[bool]int{true: 1, false: 0}[tt.used]; got != want {
				t.Errorf("PAR calls = %d, want %d", got, want)
			}
			final, visited := h.follow(c, loc.String())
			if last := visited[len(visited)-1]; !strings.HasPrefix(last, h.srv.URL) || strings.Contains(last, "/bff/callback") {
				t.Fatalf("login ended at %s (%d %s), want the app", last, final.StatusCode, body(t, final))
			}
			if !h.signedIn(c) {
				t.Error("no session after the login")
			}
		})
	}
}

// TestPARConfigErrors: par = "required" without the IdP's endpoint, and
// par = "off" with an IdP that requires PAR, are configuration errors
// that keep the app from becoming ready (and -check-config -online
// reports them).
func TestPARConfigErrors(t *testing.T) {
	tests := []struct {
		name, par, want string
		op              testop.Config
	}{
		{name: "required without endpoint", par: "required", want: "no pushed_authorization_request_endpoint"},
		{name: "off but required by the IdP", par: "off", op: testop.Config{RequirePAR: true}, want: `par: is "off", but the IdP requires`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{op: tt.op, notReady: true, mutate: func(a *AppConfig) { a.PAR = tt.par }})
			waitFor(t, "the configuration error", func() bool {
				err := h.gw.Ready(context.Background())
				return err != nil && strings.Contains(err.Error(), "configuration error")
			})
			if err := h.gw.Ready(context.Background()); !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ready = %v, want %q", err, tt.want)
			}
			app := AppConfig{Name: "demo", Issuer: h.op.URL, ClientID: "client", ClientSecret: "s", PAR: tt.par}
			app.Defaults()
			problems, _, _ := CheckOnlineReport(context.Background(), http.DefaultClient, app)
			if !slices.ContainsFunc(problems, func(e error) bool { return strings.Contains(e.Error(), tt.want) }) {
				t.Errorf("CheckOnline problems %v, want %q", problems, tt.want)
			}
		})
	}
	bad := AppConfig{Name: "demo", Issuer: "https://idp.example", ClientID: "c", PAR: "sometimes"}
	bad.Defaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `par: must be "auto", "required" or "off", not "sometimes"`) {
		t.Errorf("Validate(par = sometimes) = %v", err)
	}
}

// TestPAROnlineNotes: -check-config -online says whether logins use PAR
// and whether the IdP sends iss.
func TestPAROnlineNotes(t *testing.T) {
	op := testop.New(t, testop.Config{PAR: true, AuthorizationResponseISS: true})
	app := AppConfig{Name: "demo", Issuer: op.URL, ClientID: "client", ClientSecret: "s"}
	app.Defaults()
	problems, _, notes := CheckOnlineReport(context.Background(), http.DefaultClient, app)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{"par: logins use pushed authorization requests (RFC 9126) at " + op.URL + "/par", "sends iss in authorization responses (RFC 9207)"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes %q, want %q", all, want)
		}
	}
}

// TestPARClientAuth: the pushed request authenticates the client like the
// token endpoint, with each method (private_key_jwt's assertion has the
// issuer as audience: the test OP checks it).
func TestPARClientAuth(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{testop.SecretBasic, testop.SecretPost, testop.PrivateKeyJWT} {
		t.Run(method, func(t *testing.T) {
			h := newHarness(t, harnessOpts{
				op: testop.Config{PAR: true, TokenAuthMethods: []string{method}},
				mutate: func(a *AppConfig) {
					a.TokenEndpointAuthMethod = method
					if method == testop.PrivateKeyJWT {
						a.ClientAssertionKeyFile = "assertion.pem"
						a.ClientAssertionKey = key
					}
				},
			})
			var pub any
			if method == testop.PrivateKeyJWT {
				pub = key.Public()
			}
			h.op.SetClientAuth(h.op.ClientID(), method, pub)
			h.login("/")
			want := []string{"par " + method, "token " + method}
			if got := h.op.ClientAuthMethods(); !slices.Equal(got, want) {
				t.Errorf("client authentications = %q, want %q (failures %q)", got, want, h.op.ClientAuthFailures())
			}
			if h.op.PARCalls() != 1 {
				t.Errorf("PAR calls = %d, want 1", h.op.PARCalls())
			}
		})
	}
}

// TestPARFailure: an error from the PAR endpoint is a 502 page that
// shows nothing of the IdP's answer, counted as a failed login (reason
// par); a silent login answers ok:false.
func TestPARFailure(t *testing.T) {
	const leak = "<script>secret-detail-from-idp</script>"
	h := newHarness(t, harnessOpts{op: testop.Config{PAR: true}})
	h.op.FailPAR(http.StatusBadRequest, "invalid_request", leak)
	resp := h.get(h.browser(), "/bff/login")
	b := body(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	for _, bad := range []string{"secret-detail", h.op.ClientSecret(), h.op.URL, "invalid_request"} {
		if strings.Contains(b, bad) {
			t.Errorf("page leaks %q:\n%s", bad, b)
		}
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": "failed", "reason": "par"}); got != 1 {
		t.Errorf(`bffgate_logins_total{result="failed",reason="par"} = %v, want 1`, got)
	}
	if msg := h.silentAnswer(h.get(h.browser(), "/bff/silent-login")); msg.OK || msg.Error != "temporarily_unavailable" {
		t.Errorf("silent login message = %+v, want ok:false temporarily_unavailable", msg)
	}
	if got, _ := metricValue(t, h.gw.registry, "bffgate_logins_total", map[string]string{"app": "demo", "result": "failed", "reason": "par"}); got != 2 {
		t.Errorf(`bffgate_logins_total{result="failed",reason="par"} = %v, want 2`, got)
	}

	// A 500 fails the same way.
	h.op.FailPAR(http.StatusInternalServerError, "server_error", leak)
	if resp := h.get(h.browser(), "/bff/login"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("500 from the PAR endpoint: status = %d, want 502", resp.StatusCode)
	} else if b := body(t, resp); strings.Contains(b, "secret-detail") {
		t.Errorf("page leaks the IdP's description:\n%s", b)
	}
}

// TestPARReload: par is an identity key: a reload from "auto" to "off"
// rebuilds the app's discovery, and its logins stop pushing.
func TestPARReload(t *testing.T) {
	h := newHarness(t, harnessOpts{op: testop.Config{PAR: true}})
	if loc, _ := h.loginRedirect(h.browser(), "/bff/login").Location(); !loc.Query().Has("request_uri") {
		t.Fatalf("before the reload: %s, want PAR", loc)
	}
	cfg := h.config()
	cfg.Apps[0].PAR = "off"
	if ch := h.reload(cfg); !slices.Contains(ch.Changed, "demo") {
		t.Fatalf("reload changes %+v, want demo changed", ch)
	}
	h.waitReady()
	loc, _ := h.loginRedirect(h.browser(), "/bff/login").Location()
	if loc.Query().Has("request_uri") || loc.Query().Get("state") == "" {
		t.Errorf("after the reload to par = off: %s, want the request in the URL", loc)
	}
	if n := h.op.PARCalls(); n != 1 {
		t.Errorf("PAR calls = %d, want 1 (before the reload only)", n)
	}
}
