package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// startIdP6 starts e2e/idp6 (oidc-provider 6.31.1: front-channel logout and
// session management) with the default clients pointing at gwURL, and
// returns it with its issuer URL.
func startIdP6(t *testing.T, dir, gwURL string) (*proc, string) {
	t.Helper()
	port := freePorts(t, 1)[0]
	issuer := "http://127.0.0.1:" + strconv.Itoa(port)
	p := startNode(t, dir, "idp6", []string{
		"PORT=" + strconv.Itoa(port),
		"HOST=127.0.0.1",
		"GATEWAY_URL=" + gwURL,
		"DEMO_CLIENT_SECRET=" + demoSecret,
		"ISSUER=", "CLIENTS_FILE=", "CLIENTS_JSON=", "DEBUG=",
	}, issuer+"/.well-known/openid-configuration", filepath.Join(repoRoot, "e2e", "idp6", "server.js"))
	return p, issuer
}

// TestIdP6Serves checks the second IdP on its own: the discovery document
// announces front-channel logout and session management, and the
// check_session_iframe page loads nothing from another host (jsSHA from the
// IdP itself, with the CDN's SRI hash; no polyfill.io).
func TestIdP6Serves(t *testing.T) {
	requirePrereqs(t)
	dir := artifactDir(t)
	_, issuer := startIdP6(t, dir, "http://127.0.0.1:1")

	var meta map[string]any
	getJSON(t, issuer+"/.well-known/openid-configuration", &meta)
	for _, k := range []string{"frontchannel_logout_supported", "frontchannel_logout_session_supported",
		"backchannel_logout_supported", "backchannel_logout_session_supported"} {
		if meta[k] != true {
			t.Errorf("discovery %s = %v, want true", k, meta[k])
		}
	}
	for _, k := range []string{"check_session_iframe", "end_session_endpoint", "revocation_endpoint"} {
		if v, _ := meta[k].(string); !strings.HasPrefix(v, issuer+"/") {
			t.Errorf("discovery %s = %v, want a URL under %s", k, meta[k], issuer)
		}
	}

	iframe, _ := meta["check_session_iframe"].(string)
	html := getBody(t, iframe)
	if strings.Contains(html, "polyfill") || strings.Contains(html, "cdnjs") {
		t.Errorf("check_session_iframe still names a remote script:\n%s", html)
	}
	srcs := regexp.MustCompile(`<script[^>]*\ssrc="([^"]*)"[^>]*>`).FindAllStringSubmatch(html, -1)
	if len(srcs) != 1 || !strings.HasPrefix(srcs[0][1], "/") {
		t.Fatalf("check_session_iframe scripts = %v, want exactly one local script (jsSHA)", srcs)
	}
	js := getBody(t, issuer+srcs[0][1])
	want, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "idp6", "node_modules", "jssha", "src", "sha256.js"))
	if err != nil {
		t.Fatal(err)
	}
	if js != string(want) {
		t.Errorf("the served jsSHA is not node_modules/jssha/src/sha256.js")
	}
	sum := sha256.Sum256([]byte(js))
	// The integrity value of cdnjs's jsSHA 2.3.1, as oidc-provider 6.31.1 has it.
	const cdnSRI = "sha256-NyuvLfsvfCfE+ceV6/W19H+qVp3M8c9FzAgj72CW39w="
	if got := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); got != cdnSRI {
		t.Errorf("local jsSHA hashes to %s, want the CDN copy's %s", got, cdnSRI)
	}
	if !strings.Contains(html, `integrity="`+cdnSRI+`"`) {
		t.Errorf("check_session_iframe lost the integrity attribute")
	}
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, res.Status, b)
	}
	return string(b)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getBody(t, u)), v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
