package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

const reloadAdminToken = "reload-test-admin-token"

// TestReloadBinary runs the built binary with one app and a signed-in
// user, then rewrites its config file: a second app added and the API's
// upstream changed, applied by SIGHUP while the session keeps working;
// an invalid file refused whole (SIGHUP and POST /admin/reload) while
// everything keeps working; a restart-only key named and kept.
func TestReloadBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "bffgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	op := testop.New(t, testop.Config{})
	upstreamA, upstreamB := answering(t, "A"), answering(t, "B")
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	op.SetRedirectURL(public + "/bff/callback")
	op.AddClient("second", "second-secret-0123456789-0123456789", public+"/two/bff/callback")

	cfg := func(apiUpstream, more, server string) testConfig {
		return testConfig{
			op: op, listen: listen, admin: admin,
			server: fmt.Sprintf("admin_token = %q\nrate_limits = { login = { off = true } }\n%s", reloadAdminToken, server),
			app:    fmt.Sprintf("  [[apps.apis]]\n  path = \"/api/\"\n  upstream = %q\n%s", apiUpstream, more),
		}
	}
	path := cfg(upstreamA.URL, "", "").write(t)
	rewrite := func(body string) {
		t.Helper()
		if err := os.WriteFile(path+".new", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil { // as editors and config managers do
			t.Fatal(err)
		}
	}
	read := func(c testConfig) string {
		t.Helper()
		b, err := os.ReadFile(c.write(t))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	var stderr proctest.Buffer
	cmd := exec.Command(bin, "-config", path)
	cmd.Stderr = &stderr
	proc, err := proctest.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Stop)
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)

	browser := signIn(t, public)
	wantAPI(t, browser, public, "A")

	// A second app and the API's new upstream, by SIGHUP.
	second := fmt.Sprintf(`[[apps]]
name = "two"
path_prefix = "/two/"
issuer = %q
client_id = "second"
client_secret = "second-secret-0123456789-0123456789"
frontend = "http://127.0.0.1:1"`, op.URL)
	rewrite(read(cfg(upstreamB.URL, "", "")) + second + "\n")
	hup(t, proc)
	waitReload(t, admin, 1, "ok")
	waitStatus(t, "http://"+admin+"/readyz", http.StatusOK)
	wantAPI(t, browser, public, "B") // the session survived, the API moved
	wantLogin(t, public+"/two/bff/login", "client_id=second")

	// An invalid file is refused whole, with every problem logged; the
	// running configuration stays.
	invalid := strings.Replace(read(cfg(upstreamA.URL, "", "")), `name = "demo"`, `name = "demo"
issuer_typo = 1
scopes = "openid"`, 1) + second + "\n"
	rewrite(invalid)
	hup(t, proc)
	waitReload(t, admin, 2, "invalid")
	for _, want := range []string{"issuer_typo", "scopes"} {
		if !poll(5*time.Second, func() bool { return strings.Contains(stderr.String(), want) }) {
			t.Errorf("the log does not name the problem %s:\n%s", want, proctest.Tail(stderr.String(), 20))
		}
	}
	wantAPI(t, browser, public, "B")
	wantLogin(t, public+"/two/bff/login", "client_id=second")

	// POST /admin/reload: the same refusal, as JSON.
	code, rep := adminReload(t, admin, reloadAdminToken)
	if code != http.StatusUnprocessableEntity || rep.Result != "invalid" || len(rep.Problems) < 2 {
		t.Errorf("POST /admin/reload of the invalid file: %d %+v, want 422 with both problems", code, rep)
	}
	if code, _ := adminReload(t, admin, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("POST /admin/reload with a wrong token: %d, want 401", code)
	}

	// A restart-only key: named, kept; the app removed, its routes gone;
	// log_level applied at once (a 401 is logged at debug).
	rewrite(read(cfg(upstreamA.URL, "", "log_level = \"debug\"\naccess_log = true")))
	code, rep = adminReload(t, admin, reloadAdminToken)
	if code != http.StatusOK || rep.Result != "ok" || !slices.Equal(rep.RestartRequired, []string{"server.access_log"}) ||
		!slices.Equal(rep.Removed, []string{"two"}) {
		t.Errorf("POST /admin/reload: %d %+v, want ok, two removed, server.access_log needing a restart", code, rep)
	}
	if !poll(5*time.Second, func() bool { return strings.Contains(stderr.String(), `"key":"server.access_log"`) }) {
		t.Errorf("no warning names server.access_log:\n%s", proctest.Tail(stderr.String(), 10))
	}
	wantAPI(t, browser, public, "A")
	resp, err := http.Get(public + "/bff/user")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !poll(5*time.Second, func() bool { return strings.Contains(stderr.String(), `"level":"DEBUG","msg":"request failed"`) }) {
		t.Errorf("no debug line after a reload to log_level debug:\n%s", proctest.Tail(stderr.String(), 10))
	}

	metrics := scrape(t, "http://"+admin+"/metrics")
	for _, want := range []string{`bffgate_config_reloads_total{result="ok"} 2`, `bffgate_config_reloads_total{result="invalid"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "bffgate_config_reloads_total"))
		}
	}
	if strings.Contains(stderr.String(), op.ClientSecret()) || strings.Contains(stderr.String(), "second-secret") {
		t.Error("the log contains a client secret")
	}
}

// answering is an upstream that answers name.
func answering(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	return srv
}

func hup(t *testing.T, p *proctest.Proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// wantAPI calls /api/x with the browser's session and wants the named
// upstream's answer.
func wantAPI(t *testing.T, c *http.Client, public, want string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, public+"/api/x", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != want {
		t.Errorf("GET /api/x: %d %q, want 200 %q", resp.StatusCode, b, want)
	}
}

// wantLogin wants a 302 from url to the IdP with the query part want.
func wantLogin(t *testing.T, url, want string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, want) {
		t.Errorf("GET %s: %d to %q, want 302 with %s", url, resp.StatusCode, loc, want)
	}
}

// waitReload waits until /readyz names the n-th reload's result (counted
// by bffgate_config_reloads_total).
func waitReload(t *testing.T, admin string, n int, result string) {
	t.Helper()
	ok := poll(10*time.Second, func() bool {
		total := 0
		for _, line := range strings.Split(scrape(t, "http://"+admin+"/metrics"), "\n") {
			var v int
			if _, err := fmt.Sscanf(line, `bffgate_config_reloads_total{result=%q} %d`, new(string), &v); err == nil {
				total += v
			}
		}
		return total >= n
	})
	body := readyz(t, admin)
	if !ok || !strings.Contains(body, "last reload: ") || !strings.Contains(body, " "+result+"\n") {
		t.Fatalf("reload %d: /readyz says %q, want last reload %s", n, body, result)
	}
}

func readyz(t *testing.T, admin string) string {
	t.Helper()
	return scrape(t, "http://"+admin+"/readyz")
}

// reloadReport is POST /admin/reload's answer.
type reloadReport struct {
	Result          string   `json:"result"`
	Problems        []string `json:"problems"`
	RestartRequired []string `json:"restart_required"`
	Removed         []string `json:"apps_removed"`
}

func adminReload(t *testing.T, admin, token string) (int, reloadReport) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/admin/reload", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep reloadReport
	json.NewDecoder(resp.Body).Decode(&rep)
	return resp.StatusCode, rep
}
