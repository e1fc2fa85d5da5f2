package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// The demo scripts (examples/demo.sh, examples/demo-replicas.sh) run as a
// user runs them, on free ports (their DEMO_*_PORT variables), and must
// leave nothing behind when they get SIGTERM.

// demoRun is one run of a demo script: its ports, and the marker that every
// process it starts inherits in its environment.
type demoRun struct {
	env    []string
	marker string // "BFFGATE_DEMO_RUN=<random>"
	logs   string // DEMO_LOGS
	ports  map[string]int
}

// newDemoRun picks free ports for the names given (e.g. DEMO_GATEWAY_PORT)
// and kills, when the test ends, any process still carrying its marker.
func newDemoRun(t *testing.T, names ...string) *demoRun {
	t.Helper()
	d := &demoRun{
		marker: "BFFGATE_DEMO_RUN=" + rand.Text(),
		logs:   filepath.Join(t.TempDir(), "logs"),
		ports:  map[string]int{},
	}
	d.env = append(d.env, d.marker, "DEMO_LOGS="+d.logs)
	for i, p := range freePorts(t, len(names)) {
		d.ports[names[i]] = p
		d.env = append(d.env, names[i]+"="+strconv.Itoa(p))
	}
	t.Cleanup(func() {
		for _, pid := range d.leftovers() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return d
}

func (d *demoRun) url(name, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.ports[name], path)
}

// leftovers lists the processes (Linux /proc) whose environment carries
// the run's marker.
func (d *demoRun) leftovers() []int {
	want := []byte(d.marker + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func describePids(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "\n  %d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return b.String()
}

// stopAndCheck sends SIGTERM to the script's process alone (as kill -TERM
// <pid> does) and checks that it exits, that none of its processes
// remain, and that nothing listens on its ports any more.
func (d *demoRun) stopAndCheck(t *testing.T, p *proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30 s of SIGTERM; its processes:%s", p.name, describePids(d.leftovers()))
	}
	if err := eventually(5*time.Second, func() error {
		if left := d.leftovers(); len(left) > 0 {
			return fmt.Errorf("processes left after SIGTERM:%s", describePids(left))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for name, port := range d.ports {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s (%d) still accepts connections after SIGTERM", name, port)
		}
	}
}

// TestDemoScriptStops runs examples/demo.sh, waits until the gateway is
// ready, sends the script SIGTERM, and checks that everything it started
// is gone.
func TestDemoScriptStops(t *testing.T) {
	requirePrereqs(t)
	d := newDemoRun(t, "DEMO_GATEWAY_PORT", "DEMO_ADMIN_PORT", "DEMO_IDP_PORT", "DEMO_SPA_PORT", "DEMO_API_PORT")
	p := startProc(t, artifactDir(t), "demo", d.env, "bash", "examples/demo.sh")

	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second) // the script builds its programs first
	defer cancel()
	for _, u := range []string{
		d.url("DEMO_ADMIN_PORT", "/readyz"),
		d.url("DEMO_GATEWAY_PORT", "/bff/client.js"),
		d.url("DEMO_IDP_PORT", "/healthz"),
		d.url("DEMO_SPA_PORT", "/healthz"),
		d.url("DEMO_API_PORT", "/healthz"),
	} {
		if err := p.waitHTTP(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventually(10*time.Second, func() error {
		if !strings.Contains(p.log.String(), "demo is up") {
			return fmt.Errorf("no banner yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("demo.sh printed no banner: %v", err)
	}
	d.stopAndCheck(t, p)
}

// TestDemoReplicas runs make demo-replicas on free ports: a login through
// the balancer (whose round robin spreads the login over the replicas),
// the session seen by all three replicas, Redis stopped (503, /readyz
// false) and started again (the session is back), the IdP's "No" that
// leaves it alive, its "Yes, sign me out everywhere" whose back-channel logout
// reaches one replica and is then refused by all three; then SIGTERM to
// make stops everything.
func TestDemoReplicas(t *testing.T) {
	requirePrereqs(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (CI=true: no skipping)")
		}
		t.Skip("redis-server is not installed")
	}
	names := []string{"DEMO_GATEWAY_PORT", "DEMO_IDP_PORT", "DEMO_SPA_PORT", "DEMO_API_PORT", "DEMO_REDIS_PORT",
		"r1", "r2", "r3", "admin1", "admin2", "admin3"}
	d := newDemoRun(t, names...)
	d.env = append(d.env,
		fmt.Sprintf("DEMO_REPLICA_PORTS=%d %d %d", d.ports["r1"], d.ports["r2"], d.ports["r3"]),
		fmt.Sprintf("DEMO_REPLICA_ADMIN_PORTS=%d %d %d", d.ports["admin1"], d.ports["admin2"], d.ports["admin3"]))
	// A make of its own: not a part of a make test's jobserver.
	env := append(d.env, "MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=")
	p := startProc(t, artifactDir(t), "demo-replicas", env, "make", "-s", "demo-replicas")

	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second) // the script builds its programs first
	defer cancel()
	for _, u := range []string{
		d.url("admin1", "/readyz"), d.url("admin2", "/readyz"), d.url("admin3", "/readyz"),
		d.url("DEMO_GATEWAY_PORT", "/bff/client.js"), d.url("DEMO_IDP_PORT", "/healthz"),
	} {
		if err := p.waitHTTP(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	c := newHTTPUser(t)
	page := c.get(d.url("DEMO_GATEWAY_PORT", "/bff/login?returnUrl=/"))
	action := mustMatch(t, page, `id="login-form" method="post" action="([^"]+)"`)
	c.postForm(d.url("DEMO_IDP_PORT", html.UnescapeString(action)), url.Values{"login": {"alice"}, "password": {"wonderland"}})

	replicas := []string{"r1", "r2", "r3"}
	userOn := func(r string) int { return c.status(d.url(r, "/bff/user")) }
	for _, r := range replicas {
		if got := userOn(r); got != http.StatusOK {
			t.Fatalf("after the login through the balancer, /bff/user on %s = %d, want 200", r, got)
		}
	}
	if got := c.status(d.url("DEMO_GATEWAY_PORT", "/api/hello")); got != http.StatusOK {
		t.Fatalf("/api/hello through the balancer = %d, want 200", got)
	}
	// The client token's API answers signed out, on every replica.
	anon := newHTTPUser(t)
	for _, r := range replicas {
		if got := anon.status(d.url(r, "/client-api/hello")); got != http.StatusOK {
			t.Errorf("/client-api/hello signed out on %s = %d, want 200", r, got)
		}
	}
	balancerLines := func() []string {
		var lines []string
		for _, l := range p.log.Lines() {
			if strings.Contains(l, " → ") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	served := map[string]bool{}
	for _, l := range balancerLines() {
		served[strings.Fields(l)[0]] = true
	}
	if len(served) != 3 {
		t.Errorf("the balancer's lines name replicas %v, want r1, r2 and r3:\n%s", served, strings.Join(balancerLines(), "\n"))
	}

	// Redis stopped as the README has it (saving its data in the logs'
	// folder): API calls get 503 and /readyz turns false; started again,
	// the session is back on every replica.
	redisPort := strconv.Itoa(d.ports["DEMO_REDIS_PORT"])
	if out, err := exec.Command("redis-cli", "-p", redisPort, "shutdown", "save").CombinedOutput(); err != nil && len(out) > 0 {
		t.Fatalf("redis-cli shutdown save: %v %s", err, out)
	}
	if err := eventually(15*time.Second, func() error {
		if got := c.status(d.url("DEMO_GATEWAY_PORT", "/api/hello")); got != http.StatusServiceUnavailable {
			return fmt.Errorf("/api/hello with Redis stopped = %d, want 503", got)
		}
		for _, a := range []string{"admin1", "admin2", "admin3"} {
			if got := c.status(d.url(a, "/readyz")); got != http.StatusServiceUnavailable {
				return fmt.Errorf("%s /readyz with Redis stopped = %d, want 503", a, got)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	redis := startProc(t, artifactDir(t), "redis-again", []string{d.marker}, "redis-server",
		"--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--dir", d.logs)
	for _, a := range []string{"admin1", "admin2", "admin3"} {
		if err := redis.waitHTTP(ctx, d.url(a, "/readyz")); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range replicas {
		if got := userOn(r); got != http.StatusOK {
			t.Fatalf("with Redis started again, /bff/user on %s = %d, want 200", r, got)
		}
	}

	// The IdP's sign-out page, as the README has it: "No" leaves the app
	// signed in, "Yes, sign me out everywhere" signs it out.
	endSession := d.url("DEMO_IDP_PORT", "/session/end?client_id=other")
	confirm := func(yes bool) {
		page := c.get(endSession)
		form := url.Values{"xsrf": {mustMatch(t, page, `name="xsrf" value="([^"]+)"`)}}
		if yes {
			form.Set("logout", "yes")
		}
		c.postForm(d.url("DEMO_IDP_PORT", "/session/end/confirm"), form)
	}
	confirm(false)
	for _, r := range replicas {
		if got := userOn(r); got != http.StatusOK {
			t.Fatalf("after No at the IdP, /bff/user on %s = %d, want 200", r, got)
		}
	}
	confirm(true)
	if err := eventually(10*time.Second, func() error {
		for _, l := range balancerLines() {
			if strings.Contains(l, "POST /bff/backchannel-logout → 200") {
				return nil
			}
		}
		return fmt.Errorf("no back-channel logout answered 200 in the balancer's lines:\n%s", strings.Join(balancerLines(), "\n"))
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		if got := userOn(r); got != http.StatusUnauthorized {
			t.Errorf("after the back-channel logout, /bff/user on %s = %d, want 401", r, got)
		}
	}
	redis.Stop()
	d.stopAndCheck(t, p)
}

// httpUser is a browser without JavaScript: a cookie jar that follows
// redirects, for the demo's pages.
type httpUser struct {
	t *testing.T
	c *http.Client
}

func newHTTPUser(t *testing.T) *httpUser {
	jar, _ := cookiejar.New(nil)
	return &httpUser{t: t, c: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

func (u *httpUser) do(req *http.Request) (int, string) {
	u.t.Helper()
	req.Header.Set("X-CSRF", "1")
	res, err := u.c.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(body)
}

func (u *httpUser) get(target string) string {
	u.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	code, body := u.do(req)
	if code != http.StatusOK {
		u.t.Fatalf("GET %s: %d\n%s", target, code, proctest.Tail(body, 20))
	}
	return body
}

func (u *httpUser) status(target string) int {
	u.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	code, _ := u.do(req)
	return code
}

func (u *httpUser) postForm(target string, form url.Values) string {
	u.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, body := u.do(req)
	if code != http.StatusOK {
		u.t.Fatalf("POST %s: %d\n%s", target, code, proctest.Tail(body, 20))
	}
	return body
}

func mustMatch(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, proctest.Tail(s, 30))
	}
	return m[1]
}
