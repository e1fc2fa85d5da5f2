package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
	"github.com/bffgate/bffgate/session/storetest"
)

// The package's redis-server, shared by the replica tests (each uses its
// own database); tests that stop Redis start their own.
var (
	redisSrv  *storetest.RedisServer
	redisSkip string
)

func TestMain(m *testing.M) {
	code := storetest.MainWithRedis(m, func(srv *storetest.RedisServer, skip string) { redisSrv, redisSkip = srv, skip })
	if signingKeyPath != "" {
		os.Remove(signingKeyPath)
	}
	os.Exit(code)
}

const replicaSecret = "replica-test-session-secret-0123456789abcdef"

// replica is one gateway configured for the shared Redis.
type replica struct {
	listen, admin, public string
	config                string // path
}

// replicaOpts are the parts of a replica's config that tests vary.
type replicaOpts struct {
	redisURL   string
	redis      string // [session] keys naming Redis instead of redis_url (a Cluster)
	op         *testop.OP
	api        string // upstream of /api/
	downstream string // back-channel logout URI of a downstream app; "" for none
	notifier   string // extra [notifier] keys
}

func newReplica(t *testing.T, o replicaOpts) *replica {
	t.Helper()
	r := &replica{listen: freePort(t), admin: freePort(t)}
	r.public = "http://" + r.listen
	down := ""
	if o.downstream != "" {
		down = fmt.Sprintf(`
  [[apps.downstream]]
  backchannel_logout_uri = %q
  audience = "demo-api"
  notify = "always"`, o.downstream)
	}
	redisKeys := fmt.Sprintf("redis_url = %q", o.redisURL)
	if o.redis != "" {
		redisKeys = o.redis
	}
	r.config = testConfig{
		op: o.op, listen: r.listen, admin: r.admin,
		server: `log_level = "error"
rate_limits = { login = { off = true }, backchannel = { off = true } }`,
		session: "store = \"redis\"\n" + redisKeys,
		secret:  replicaSecret,
		app: fmt.Sprintf(`  [[apps.apis]]
  path = "/api/"
  upstream = %q
%s`, o.api, down),
		tables: fmt.Sprintf("[signing]\nkey_file = %q\n[notifier]\n%s", signingKeyFile(t), o.notifier),
	}.write(t)
	return r
}

var (
	signingKeyOnce sync.Once
	signingKeyPath string
)

// signingKeyFile is one EC key every replica of the test binary shares,
// as replicas must; TestMain removes it.
func signingKeyFile(t *testing.T) string {
	signingKeyOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		signingKeyPath = filepath.Join(os.TempDir(), fmt.Sprintf("bffgate-replica-signing-%d.pem", os.Getpid()))
		if err := os.WriteFile(signingKeyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			panic(err)
		}
	})
	return signingKeyPath
}

// start runs the replica in-process until the test ends.
func (r *replica) start(t *testing.T) {
	t.Helper()
	startRun(t, r.config, r.admin, io.Discard)
}

// user is a browser signed in through one replica.
type user struct {
	client *http.Client
	sid    string // the IdP's sid
}

// login signs a new browser in through r (the OP's redirect URL must be
// r's callback).
func login(t *testing.T, op *testop.OP, r *replica) *user {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(r.public + "/bff/login")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	u, _ := url.Parse(r.public)
	if len(jar.Cookies(u)) == 0 {
		t.Fatal("login: no session cookie")
	}
	return &user{client: c, sid: op.LastSID()}
}

// api calls GET /api/hello on r with the user's cookie; the cookie jar
// ignores ports, so one browser reaches every replica.
func (u *user) api(r *replica) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, r.public+"/api/hello", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func backchannel(r *replica, token string) (int, string, error) {
	resp, err := http.Post(r.public+"/bff/backchannel-logout", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func logoutToken(op *testop.OP, sid string) string {
	return op.Sign(op.LogoutToken(func(c map[string]any) { c["sid"] = sid }), testop.SignOpts{})
}

func newAPI(t *testing.T) *httptest.Server {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(api.Close)
	return api
}

// TestReplicasShareLogout runs two replicas on one Redis: a user signs in
// through A and can use B too; the IdP's back-channel logout reaches B;
// A refuses the session on the very next request, A's event stream gets
// its logout event, and the same logout token replayed to A is refused.
func TestReplicasShareLogout(t *testing.T) {
	storetest.SkipWithoutRedis(t, redisSrv, redisSkip)
	replicasShareLogout(t, replicaOpts{redisURL: redisSrv.URL(1)})
}

// replicasShareLogout is TestReplicasShareLogout on the Redis that o
// names.
func replicasShareLogout(t *testing.T, o replicaOpts) {
	op := testop.New(t, testop.Config{})
	api := newAPI(t)
	o.op, o.api = op, api.URL
	a := newReplica(t, o)
	b := newReplica(t, o)
	a.start(t)
	b.start(t)
	op.SetRedirectURL(a.public + "/bff/callback")

	alice := login(t, op, a)
	for _, r := range []*replica{a, b} {
		if code, body, err := alice.api(r); err != nil || code != http.StatusOK {
			t.Fatalf("API through %s: %d %q %v, want 200", r.listen, code, body, err)
		}
	}

	// A's SSE stream.
	req, _ := http.NewRequest(http.MethodGet, a.public+"/bff/events", nil)
	resp, err := alice.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := proctest.Lines(resp.Body, 10)
	waitLine(t, events, ": connected", 5*time.Second)

	token := logoutToken(op, alice.sid)
	if code, body, err := backchannel(b, token); err != nil || code != http.StatusOK {
		t.Fatalf("back-channel logout at B: %d %q %v, want 200", code, body, err)
	}
	if code, body, err := alice.api(a); err != nil || code != http.StatusUnauthorized {
		t.Errorf("API through A right after the logout at B: %d %q %v, want 401", code, body, err)
	}
	waitLine(t, events, "event: logout", 5*time.Second)
	waitLine(t, events, `data: {"cause":"backchannel"}`, time.Second)

	if code, body, err := backchannel(a, token); err != nil || code != http.StatusBadRequest {
		t.Errorf("the same logout token replayed to A: %d %q %v, want 400", code, body, err)
	}
}

func waitLine(t *testing.T, lines <-chan string, want string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream closed before %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within %v", want, d)
		}
	}
}

// drain reads and closes a response body.
