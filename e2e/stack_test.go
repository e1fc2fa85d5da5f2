package e2e

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// demoSecret is the client secret of demo and demo2 at the IdP and in the
// gateway's config.
const demoSecret = "e2e-demo-secret-0123456789"

// demoAPIResource is the demo API's resource indicator (RFC 8707): the
// IdP's API_RESOURCE default and the API's -resource, for JWT client
// tokens.
const demoAPIResource = "urn:bffgate:demo-api"

// demoAPIAudience is the aud of the logout tokens the gateway signs for the
// demo API ([[apps.downstream]] audience, the API's -audience).
const demoAPIAudience = "demo-api"

// appSpec is one [[apps]] entry of the generated gateway config.
type appSpec struct {
	name     string // also the client_id at the IdP (demo, demo2)
	prefix   string // "/" or "/app2/"
	clientID string
	// settings are extra TOML lines for the [[apps]] table, e.g.
	// "allow_missing_exp = true".
	settings string
	// downstream is extra TOML appended after the app's [[apps.apis]] and
	// the demo API's [[apps.downstream]], e.g. more [[apps.downstream]] or
	// [[apps.apis]]; ${API_URL} stands for the demo API's URL.
	downstream string
	// idTokenAlgs is the TOML array of id_token_signing_algs (default
	// ["RS256"], the demo IdP's key).
	idTokenAlgs string
}

// stackOptions choose the IdP of a stack.
type stackOptions struct {
	// idp6 runs e2e/idp6 (oidc-provider 6.31.1: front-channel logout,
	// session management) instead of examples/idp (9.x).
	idp6 bool
	// idpHost is the host of the IdP's issuer URL: "" or "127.0.0.1", or
	// "localhost" to put the IdP on another site than the gateway (the
	// IdP still listens on 127.0.0.1).
	idpHost string
	// clientsJSON replaces the IdP's default clients (CLIENTS_JSON;
	// ${GATEWAY_URL}, ${ISSUER}, ${DEMO_CLIENT_SECRET} are expanded).
	clientsJSON string
	// idpEnv are more environment variables of the IdP, e.g.
	// "ACCESS_TOKEN_TTL=2".
	idpEnv []string
}

// adminToken guards the gateway's admin API in the e2e stacks.
const adminToken = "e2e-admin-token-0123456789"

var (
	appDemo  = appSpec{name: "demo", prefix: "/", clientID: "demo"}
	appDemo2 = appSpec{name: "demo2", prefix: "/app2/", clientID: "demo2"}
)

// stack is one test's set of processes: the IdP, the sample SPA and API, and
// the gateway, all on free loopback ports, stopped when the test ends.
type stack struct {
	t   *testing.T
	dir string // artifacts of this test

	idpURL   string // issuer
	spaURL   string
	apiURL   string
	gwURL    string // the gateway's public URL (no trailing slash)
	adminURL string

	idp, spa, api, gw *proc
}

// startStack starts the whole stack for t with the given apps (default: demo
// at "/"), with the demo IdP (oidc-provider 9.x).
func startStack(t *testing.T, apps ...appSpec) *stack {
	t.Helper()
	return startStackWith(t, stackOptions{}, apps...)
}

// startStackWith starts the whole stack with the IdP that opts choose.
func startStackWith(t *testing.T, opts stackOptions, apps ...appSpec) *stack {
	t.Helper()
	requirePrereqs(t)
	if len(apps) == 0 {
		apps = []appSpec{appDemo}
	}
	ports := freePorts(t, 5)
	url := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	idpHost := opts.idpHost
	if idpHost == "" {
		idpHost = "127.0.0.1"
	}
	s := &stack{
		t:        t,
		dir:      artifactDir(t),
		idpURL:   "http://" + idpHost + ":" + strconv.Itoa(ports[0]),
		spaURL:   url(ports[1]),
		apiURL:   url(ports[2]),
		gwURL:    url(ports[3]),
		adminURL: url(ports[4]),
	}
	idpEnv := []string{
		"PORT=" + strconv.Itoa(ports[0]),
		"HOST=127.0.0.1",
		"GATEWAY_URL=" + s.gwURL,
		"DEMO_CLIENT_SECRET=" + demoSecret,
		"ISSUER=" + s.idpURL, "CLIENTS_FILE=", "CLIENTS_JSON=" + opts.clientsJSON, "DEBUG=",
	}
	idpEnv = append(idpEnv, opts.idpEnv...)
	s.spa = startProc(t, s.dir, "spa", nil, bins.spa, "-listen", strings.TrimPrefix(s.spaURL, "http://"))
	// The API validates access tokens at the IdP, and the gateway's logout
	// tokens (POST /logout, audience demo-api) against the gateway.
	s.api = startProc(t, s.dir, "api", []string{"DEMO_CLIENT_SECRET=" + demoSecret},
		bins.api, "-listen", strings.TrimPrefix(s.apiURL, "http://"), "-issuer", s.idpURL, "-client-id", "demo",
		"-gateway", s.gwURL, "-audience", demoAPIAudience, "-resource", demoAPIResource)
	discovery := s.idpURL + "/.well-known/openid-configuration"
	if opts.idp6 {
		s.idp = startNode(t, s.dir, "idp6", idpEnv, discovery, filepath.Join(repoRoot, "e2e", "idp6", "server.js"))
	} else {
		hooks := filepath.Join(repoRoot, "e2e", "testdata", "idp-hooks.mjs")
		s.idp = startNode(t, s.dir, "idp", idpEnv, discovery,
			"--import", "file://"+hooks, filepath.Join(repoRoot, "examples", "idp", "server.js"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = s.spa.waitHTTP(ctx, s.spaURL+"/") })
	wg.Go(func() { errs[1] = s.api.waitHTTP(ctx, s.apiURL+"/healthz") })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	cfg := filepath.Join(s.dir, "bffgate.toml")
	if err := os.WriteFile(cfg, []byte(s.gatewayConfig(apps)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.gw = startProc(t, s.dir, "gateway", nil, bins.gateway, "-config", cfg)
	if err := s.gw.waitHTTP(ctx, s.adminURL+"/readyz"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) gatewayConfig(apps []appSpec) string {
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by the e2e tests.
[server]
listen = %q
public_url = %q
admin_listen = %q
admin_token = %q
access_log = true
log_format = "json"
log_level = "debug"
shutdown_timeout = "2s"

[session]
store = "memory"
secret = %q
`, strings.TrimPrefix(s.gwURL, "http://"), s.gwURL, strings.TrimPrefix(s.adminURL, "http://"), adminToken, hex.EncodeToString(secret[:]))
	for _, a := range apps {
		apiPath := a.prefix + "api/"
		fmt.Fprintf(&b, `
[[apps]]
name = %q
path_prefix = %q
issuer = %q
client_id = %q
client_secret = %q
scopes = ["openid", "profile", "email", "offline_access"]
id_token_signing_algs = %s
frontend = %q
post_logout_redirect = %q
%s
  [[apps.apis]]
  path = %q
`, a.name, a.prefix, s.idpURL, a.clientID, demoSecret, cmp.Or(a.idTokenAlgs, `["RS256"]`), s.spaURL, a.prefix, a.settings, apiPath)
		if a.prefix == "/" {
			fmt.Fprintf(&b, "  upstream = %q\n  token = \"user\"\n", s.apiURL)
		} else {
			// The API serves /api/hello: forward /app2/api/hello there.
			fmt.Fprintf(&b, "  upstream = %q\n  token = \"user\"\n  strip_prefix = true\n", s.apiURL+"/api")
		}
		// As in config.toml: the demo API hears of every session end of a
		// session that called it, by a logout token the gateway signs.
		fmt.Fprintf(&b, `
  [[apps.downstream]]
  backchannel_logout_uri = %q
  audience = %q
  api = %q
`, s.apiURL+"/logout", demoAPIAudience, apiPath)
		b.WriteString(strings.ReplaceAll(a.downstream, "${API_URL}", s.apiURL))
	}
	return b.String()
}

// logEvent is one JSON log line of the IdP (event) or the gateway (msg).
type logEvent map[string]any

func (e logEvent) str(key string) string {
	v, _ := e[key].(string)
	return v
}

// jsonLines parses the JSON lines of a process's output (others are skipped).
func jsonLines(p *proc) []logEvent {
	var out []logEvent
	sc := bufio.NewScanner(strings.NewReader(p.log.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e logEvent
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// idpEvents returns the IdP's log events named event whose fields match
// (all of) match.
func (s *stack) idpEvents(event string, match map[string]string) []logEvent {
	var out []logEvent
	for _, e := range jsonLines(s.idp) {
		if e.str("event") != event {
			continue
		}
		ok := true
		for k, v := range match {
			if fmt.Sprint(e[k]) != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

// apiRequests returns the sample API's request log lines for path.
func (s *stack) apiRequests(path string) []string {
	var out []string
	for _, line := range s.api.log.Lines() {
		if strings.Contains(line, "path="+path+" ") || strings.Contains(line, `"path":"`+path+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// metric returns the sum of the gateway's metric samples named name whose
// labels include all of labels (e.g. `route="api"`).
func (s *stack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	res, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		s.t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// waitMetric is metric once the sum has reached atLeast, or after 5 s:
// for a count the gateway updates after an answer the test does not see
// (a delivery to the demo API, a request from the browser).
func (s *stack) waitMetric(atLeast float64, name string, labels ...string) float64 {
	s.t.Helper()
	var v float64
	_ = eventually(5*time.Second, func() error {
		if v = s.metric(name, labels...); v < atLeast {
			return fmt.Errorf("%s = %v", name, v)
		}
		return nil
	})
	return v
}

// gatewayRequests counts the gateway's access-log lines ("request") for
// path answered with status (0: any status), once the gateway's log has
// caught up with every request answered before this call (syncGatewayLog).
func (s *stack) gatewayRequests(path string, status int) int {
	s.t.Helper()
	s.syncGatewayLog()
	n := 0
	for _, e := range jsonLines(s.gw) {
		if e.str("msg") != "request" || e.str("path") != path {
			continue
		}
		if st, _ := e["status"].(float64); status == 0 || int(st) == status {
			n++
		}
	}
	return n
}

// waitGatewayRequests is gatewayRequests once it has reached atLeast, or
// after 5 s: for a request that another process (the browser, the API)
// makes and the test does not see answered.
func (s *stack) waitGatewayRequests(path string, status, atLeast int) int {
	s.t.Helper()
	n := 0
	_ = eventually(5*time.Second, func() error {
		if n = s.gatewayRequests(path, status); n < atLeast {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	return n
}

// syncGatewayLog returns once the gateway's log holds every line written
// before it: the gateway writes its log through a buffer flushed every
// 100 ms (cmd/bffgate/logwriter.go), in order. It makes a request of its
// own and waits for that request's access-log line, found by the request
// id the gateway answered with.
func (s *stack) syncGatewayLog() {
	s.t.Helper()
	res, err := http.Get(s.gwURL + "/bff/e2e-log-sync")
	if err != nil {
		s.t.Fatalf("gateway log sync: %v", err)
	}
	res.Body.Close()
	rid := res.Header.Get("X-Request-Id")
	if rid == "" {
		s.t.Fatalf("gateway log sync: the answer (%s) has no X-Request-Id", res.Status)
	}
	err = eventually(5*time.Second, func() error {
		for _, e := range jsonLines(s.gw) {
			if e.str("msg") == "request" && e.str("request_id") == rid {
				return nil
			}
		}
		return fmt.Errorf("no access-log line for request %s", rid)
	})
	if err != nil {
		s.t.Fatalf("gateway log sync: %v within 5 s; the log's tail:\n%s", err, proctest.Tail(s.gw.log.String(), 10))
	}
}

// idpSignOutURL is the IdP's sign-out page (RP-initiated logout) as
// client "other" starts it, which comes back to the IdP's own
// "#other-signed-out" page: a sign-out none of the gateway's apps asked
// for.
func (s *stack) idpSignOutURL() string {
	return s.idpURL + "/session/end?" + url.Values{
		"client_id":                {"other"},
		"post_logout_redirect_uri": {s.idpURL + "/other/signed-out"},
	}.Encode()
}
