package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckConfigOnlineDemoIdP: bffgate -check-config -online accepts the
// stack's config against the demo IdP (oidc-provider), and refuses the
// same config with a trailing slash on the issuer, naming the fix.
func TestCheckConfigOnlineDemoIdP(t *testing.T) {
	s := startStack(t)
	cfg := filepath.Join(s.dir, "bffgate.toml")
	check := func(path string) (string, error) {
		var out bytes.Buffer
		cmd := exec.CommandContext(t.Context(), bins.gateway, "-config", path, "-check-config", "-online")
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := check(cfg)
	if err != nil || !strings.Contains(out, "is valid") {
		t.Fatalf("-check-config -online of the stack's config: %v\n%s", err, out)
	}
	// It reports PAR and RFC 9207 support (issue 17).
	for _, want := range []string{
		"info: apps[0].par: logins use pushed authorization requests (RFC 9126) at " + s.idpURL + "/request",
		"info: apps[0].issuer: the IdP sends iss in authorization responses (RFC 9207)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-check-config -online output lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(s.dir, "bffgate-slash.toml")
	slashed := strings.ReplaceAll(string(raw), fmt.Sprintf("issuer = %q", s.idpURL), fmt.Sprintf("issuer = %q", s.idpURL+"/"))
	if err := os.WriteFile(bad, []byte(slashed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = check(bad)
	if want := fmt.Sprintf("apps[0].issuer: oidc discovery: issuer %q is not the one the IdP reports: the IdP calls itself %q; set issuer to that", s.idpURL+"/", s.idpURL); err == nil || !strings.Contains(out, want) {
		t.Errorf("-online with a trailing slash: %v\n%s\nwant %q", err, out, want)
	}
}

// TestUserinfoOnlyClaimsAndShortTokens: an IdP that serves the profile
// only from userinfo (oidc-provider's default, USERINFO_ONLY_CLAIMS=1) and
// issues 8 s access tokens. With userinfo = true the SPA shows the name
// (demo2, without it, does not); 24 API calls half a second apart make one
// refresh grant per token lifetime, not one per call (with the fixed 30 s
// margin: a grant for every call).
func TestUserinfoOnlyClaimsAndShortTokens(t *testing.T) {
	app := appDemo
	app.settings = "userinfo = true"
	s := startStackWith(t, stackOptions{idpEnv: []string{"USERINFO_ONLY_CLAIMS=1", "ACCESS_TOKEN_TTL=8"}}, app, appDemo2)
	tb := newBrowser(t).newTab()

	// demo2 has no userinfo = true: its ID token alone has no name.
	tb.loginToApp(s.gwURL+"/app2/", "alice", "wonderland", false)
	if name := tb.text("#user-name"); name == "Alice Liddell" {
		t.Fatalf("demo2 #user-name = %q, want none: the IdP must keep the name out of the ID token", name)
	}
	tb.loginToApp(s.gwURL+"/", "alice", "", true)
	if name := tb.text("#user-name"); name != "Alice Liddell" {
		t.Errorf("#user-name = %q, want Alice Liddell (from userinfo)", name)
	}

	grants := func() int {
		return len(s.idpEvents("grant.success", map[string]string{"client_id": "demo", "grant_type": "refresh_token"}))
	}
	start, before := time.Now(), grants()
	const calls = 24
	for range calls {
		if r := tb.fetch("/api/hello"); r.Status != 200 {
			t.Fatalf("/api/hello = %d %s", r.Status, r.Body)
		}
		time.Sleep(500 * time.Millisecond) // a user's pace of API calls
	}
	// 8 s tokens are refreshed 2 s (a quarter) before they expire: a
	// grant every ~6 s, plus one for the login's token being older.
	elapsed := time.Since(start)
	if n, most := grants()-before, min(int(elapsed/(6*time.Second))+1, calls/4); n < 1 || n > most {
		t.Errorf("refresh grants during %d API calls in %v = %d, want 1 to %d (one per token)", calls, elapsed.Round(time.Second), n, most)
	}
	if r := tb.fetch("/bff/user"); r.Status != 200 || !strings.Contains(r.Body, "Alice Liddell") {
		t.Errorf("/bff/user after refreshes = %d %s, want the userinfo name kept", r.Status, r.Body)
	}
}
