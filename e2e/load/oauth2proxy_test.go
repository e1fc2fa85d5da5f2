//go:build loadbench

package load

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/proctest"
	"github.com/bffgate/bffgate/internal/testop"
)

// oauth2Proxy is the optional target O: oauth2-proxy with its cookie
// store in front of the same upstream, signed in through the same test OP
// (issue 15: "so users can see the comparison for themselves").
type oauth2Proxy struct {
	bin, version   string
	addr           string
	callbackPrefix string
	proc           *proc
	cookie         string
}

// findOAuth2Proxy is the binary BFFGATE_LOAD_OAUTH2_PROXY names (make
// bench: BENCH_OAUTH2_PROXY), else oauth2-proxy on PATH or in
// $(go env GOPATH)/bin; "" and the reason when there is none.
func findOAuth2Proxy() (bin, reason string) {
	switch v := os.Getenv("BFFGATE_LOAD_OAUTH2_PROXY"); v {
	case "0":
		return "", "BFFGATE_LOAD_OAUTH2_PROXY=0"
	case "":
	default:
		if _, err := os.Stat(v); err != nil {
			return "", fmt.Sprintf("BFFGATE_LOAD_OAUTH2_PROXY=%s: %v", v, err)
		}
		return v, ""
	}
	if p, err := exec.LookPath("oauth2-proxy"); err == nil {
		return p, ""
	}
	if out, err := exec.Command(goCmd(), "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "oauth2-proxy")
			if _, err := os.Stat(p); err == nil {
				return p, ""
			}
		}
	}
	return "", "no oauth2-proxy binary (set BENCH_OAUTH2_PROXY=/path/to/oauth2-proxy, or go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6)"
}

// newOAuth2Proxy reserves its address (its callback must be registered
// with the OP before anyone signs in).
func newOAuth2Proxy(t testing.TB, bin string) *oauth2Proxy {
	o := &oauth2Proxy{bin: bin, addr: proctest.FreeAddr(t)}
	o.callbackPrefix = "http://" + o.addr + "/oauth2/callback"
	o.version = "oauth2-proxy"
	// A go-installed binary says "oauth2-proxy undefined" to --version;
	// its module version is in the build information.
	if out, err := exec.Command(goCmd(), "version", "-m", bin).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" {
				o.version = "oauth2-proxy " + f[2]
			}
		}
	}
	return o
}

// start runs oauth2-proxy against op and upstreamURL, as a user would
// put it in front of an API: OIDC provider, cookie store, the ID token
// passed upstream as a bearer (--pass-authorization-header) and the
// access token as X-Forwarded-Access-Token, request logging off (as
// bffgate's access log is by default).
func (o *oauth2Proxy) start(t testing.TB, op *testop.OP, upstreamURL string) error {
	o.proc = start(t, "oauth2-proxy", nil, o.bin,
		"--http-address="+o.addr,
		"--provider=oidc",
		"--oidc-issuer-url="+op.URL,
		"--client-id="+op.ClientID(),
		"--client-secret="+op.ClientSecret(),
		"--redirect-url="+o.callbackPrefix,
		"--code-challenge-method=S256",
		"--upstream="+upstreamURL+"/",
		"--email-domain=*",
		"--insecure-oidc-allow-unverified-email",
		"--insecure-oidc-skip-nonce=false", // send a nonce: the test OP requires one
		"--cookie-secret=load-harness-cookie-secret-32byt",
		"--cookie-secure=false",
		"--skip-provider-button",
		"--pass-access-token",
		"--pass-authorization-header",
		"--set-authorization-header",
		"--request-logging=false",
	)
	return o.proc.waitReady("http://" + o.addr + "/ping")
}

// login signs in over HTTP with a cookie jar, as a browser does, and
// keeps the session cookie(s): the cookie store splits large sessions
// into _oauth2_proxy_0, _1, ….
func (o *oauth2Proxy) login() error {
	base := "http://" + o.addr
	ck, _, err := browserLogin(base, base+"/oauth2/start?rd=%2F", o.callbackPrefix, func(name string) bool {
		return strings.HasPrefix(name, "_oauth2_proxy") && !strings.HasSuffix(name, "_csrf")
	}, nil)
	o.cookie = ck
	if err != nil {
		return fmt.Errorf("%w (oauth2-proxy: %s)", err, o.proc.tail(3))
	}
	return nil
}

func (o *oauth2Proxy) target() target {
	return target{key: "O", name: "oauth2-proxy, cookie store", url: "http://" + o.addr + apiPath,
		headers: []string{"Cookie: " + o.cookie, "X-CSRF: 1"}, pid: o.proc.Pid()}
}
