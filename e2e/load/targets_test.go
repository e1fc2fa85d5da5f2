//go:build loadbench

package load

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// sessionSecret is the gateways' session secret (they share it, as
// replicas do).
const sessionSecret = "load-harness-session-secret-0123456789abcdef"

// apiPath is the authenticated API path under load.
const apiPath = "/api/bench"

// target is one thing under load: the API URL and the headers a signed-in
// browser sends.
type target struct {
	key, name string
	url       string
	headers   []string // "Name: value"
	pid       int      // the proxy's process, whose CPU is measured (0: none)
}

// gateway is a running bffgate process.
type gateway struct {
	name           string
	proc           *proc
	public, admin  string
	cookie         string // "bffgate-demo=…", after login
	store          string
	redisURL       string
	callbackPrefix string
	serverExtra    string // more [server] keys (the streams gateway's caps)
	dpop           bool   // the app has dpop = true (target E)
}

// newGateway reserves the addresses of a gateway; start runs it.
func newGateway(name, store, redisURL string) *gateway {
	return &gateway{name: name, store: store, redisURL: redisURL}
}

func (g *gateway) reserve(t testing.TB) {
	g.public = "http://" + proctest.FreeAddr(t)
	g.admin = proctest.FreeAddr(t)
	g.callbackPrefix = g.public + "/bff/callback"
}

// start writes the gateway's config.toml and runs the binary; it returns
// an error (not a test failure) when it does not become ready, so that an
// optional target can be left out with the reason.
func (g *gateway) start(t testing.TB, op *testop.OP, upstreamURL string) error {
	t.Helper()
	redis := ""
	if g.store == "redis" {
		redis = fmt.Sprintf("redis_url = %q\n", g.redisURL)
	}
	appExtra := ""
	if g.dpop {
		appExtra = "dpop = true\n"
	}
	cfg := fmt.Sprintf(`# bffgate load harness: %s
[server]
listen = %q
public_url = %q
admin_listen = %q
%s
%s
[server.rate_limits.login]
off = true
[server.rate_limits.backchannel]
off = true
[session]
store = %q
%ssecret = %q
[[apps]]
name = "demo"
issuer = %q
client_id = %q
client_secret = %q
frontend = %q
%s  [[apps.apis]]
  path = "/api/"
  upstream = %q
`, g.name, strings.TrimPrefix(g.public, "http://"), g.public, g.admin, profilingToken(), g.serverExtra, g.store, redis, sessionSecret,
		op.URL, op.ClientID(), op.ClientSecret(), upstreamURL, appExtra, upstreamURL)
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	g.proc = start(t, g.name, nil, bins.gateway, "-config", path)
	return g.proc.waitReady("http://" + g.admin + "/readyz")
}

// login signs a user in through the test OP and keeps the session cookie.
// It returns the time the gateway took to answer /bff/callback, seen from
// the client: code exchange with the (in-process, fast) test OP, ID token
// validation, session creation and the cookie.
func (g *gateway) login() (time.Duration, error) {
	cookie, lt, err := g.loginSession(nil)
	if err != nil {
		return 0, err
	}
	g.cookie = cookie
	return lt.callback, nil
}

// loginSession signs a new session in and returns its cookie, without
// keeping it; safe for concurrent use when clock is nil.
func (g *gateway) loginSession(clock *opClock) (string, loginTiming, error) {
	return browserLogin(g.public, g.public+"/bff/login?returnUrl=/", g.callbackPrefix,
		func(name string) bool { return name == "bffgate-demo" }, clock)
}

// loginTiming is one login's callback: its round trip as the browser
// sees it, and the part of it the IdP's handler took (when timed).
type loginTiming struct {
	callback, idp time.Duration
	idpCalls      int
}

// browserLogin follows a login from start to the callback the way a
// browser does, with a cookie jar, and returns the session cookies
// ("name=value; …", those whose name keep accepts). When clock is not
// nil, the OP's handler time during the callback request is taken from
// it (logins so timed must not overlap).
func browserLogin(base, start, callbackPrefix string, keep func(string) bool, clock *opClock) (string, loginTiming, error) {
	var lt loginTiming
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer c.CloseIdleConnections()
	next := start
	for step := 0; ; step++ {
		if step == 4 {
			return "", lt, errors.New("login: too many redirects")
		}
		callback := strings.HasPrefix(next, callbackPrefix)
		if callback && clock != nil {
			clock.take()
		}
		t0 := time.Now()
		resp, err := c.Get(next)
		if err != nil {
			return "", lt, fmt.Errorf("login: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if callback {
			lt.callback = time.Since(t0)
			if clock != nil {
				lt.idp, lt.idpCalls = clock.take()
			}
		}
		if resp.StatusCode != http.StatusFound {
			return "", lt, fmt.Errorf("login: GET %s: status %d", redactQuery(next), resp.StatusCode)
		}
		if callback {
			break
		}
		loc, err := resp.Location()
		if err != nil {
			return "", lt, fmt.Errorf("login: %w", err)
		}
		next = loc.String()
	}
	u, _ := url.Parse(base)
	var cookies []string
	for _, ck := range jar.Cookies(u) {
		if keep(ck.Name) {
			cookies = append(cookies, ck.Name+"="+ck.Value)
		}
	}
	if len(cookies) == 0 {
		return "", lt, errors.New("login: no session cookie after the callback")
	}
	return strings.Join(cookies, "; "), lt, nil
}

// redactQuery drops a URL's query (codes and states) from messages.
func redactQuery(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?…"
	}
	return s
}

// target is the gateway as a load target, signed in.
func (g *gateway) target(key, name string) target {
	return target{key: key, name: name, url: g.public + apiPath, headers: []string{"Cookie: " + g.cookie, "X-CSRF: 1"}, pid: g.proc.Pid()}
}

// startRedis runs a throw-away redis-server on a free port, without
// persistence; it returns "" and the reason when there is none.
func startRedis(t testing.TB) (redisURL, reason string) {
	if !withRedis {
		return "", "BFFGATE_LOAD_REDIS=0"
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", "redis-server is not installed"
	}
	addr := proctest.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	p := start(t, "redis", nil, bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "yes")
	if err := p.waitListening(addr); err != nil {
		return "", err.Error()
	}
	return "redis://" + addr + "/0", ""
}

// check sends one request as the load generator will and wants 200.
func (tg target) check() error {
	req, _ := http.NewRequest(http.MethodGet, tg.url, nil)
	for _, h := range tg.headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", tg.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET %s: status %d: %s", tg.name, tg.url, resp.StatusCode, body)
	}
	return nil
}

// profilingToken turns the admin API (and so /debug/pprof) on when
// BFFGATE_LOAD_ADMIN_TOKEN is set, to profile a target under load:
//
//	curl -H "Authorization: Bearer $T" http://ADMIN/debug/pprof/profile?seconds=5 > gw.cpu
func profilingToken() string {
	if tok := os.Getenv("BFFGATE_LOAD_ADMIN_TOKEN"); tok != "" {
		return fmt.Sprintf("admin_token = %q", tok)
	}
	return ""
}
