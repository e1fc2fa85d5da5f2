package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bffgate/bffgate/internal/testop"
)

// testConfig is the config of a test gateway: [server], [session] and one
// app "demo" against a test OP, plus what a test adds. It is the one
// writer of the cmd tests' configs; only configs that must be broken are
// written by hand (writeConfig).
type testConfig struct {
	// op is the app's IdP; nil names one that is never called (for
	// -check-config).
	op *testop.OP
	// scheme of public_url: "http" (default) or "https".
	scheme string
	// listen and admin are the addresses of the listeners; "" leaves
	// them out (for -check-config).
	listen, admin string
	// server and session are more lines of those tables.
	server, session string
	// secret is session.secret; default 40 × "s".
	secret string
	// clientSecret is the app's client_secret; default the OP's.
	clientSecret string
	// app is more of the app: keys, then [[apps.apis]] and
	// [[apps.downstream]] tables.
	app string
	// tables are more top-level tables ([signing], [notifier]), written
	// after the app.
	tables string
}

// write writes the config to a file of the test and returns its path.
func (c testConfig) write(t *testing.T) string {
	t.Helper()
	issuer, clientID := "http://127.0.0.1:9", "demo"
	clientSecret := c.clientSecret
	if c.op != nil {
		issuer, clientID = c.op.URL, c.op.ClientID()
		if clientSecret == "" {
			clientSecret = c.op.ClientSecret()
		}
	}
	scheme := cmp.Or(c.scheme, "http")
	public := cmp.Or(c.listen, "127.0.0.1:8080")
	var b strings.Builder
	b.WriteString("[server]\n")
	if c.listen != "" {
		fmt.Fprintf(&b, "listen = %q\n", c.listen)
	}
	fmt.Fprintf(&b, "public_url = %q\n", scheme+"://"+public)
	if c.admin != "" {
		fmt.Fprintf(&b, "admin_listen = %q\n", c.admin)
	}
	writeLines(&b, c.server)
	fmt.Fprintf(&b, "[session]\nsecret = %q\n", cmp.Or(c.secret, strings.Repeat("s", 40)))
	writeLines(&b, c.session)
	fmt.Fprintf(&b, "[[apps]]\nname = \"demo\"\nissuer = %q\nclient_id = %q\n", issuer, clientID)
	if clientSecret != "" {
		fmt.Fprintf(&b, "client_secret = %q\n", clientSecret)
	}
	b.WriteString("frontend = \"http://127.0.0.1:1\"\n")
	writeLines(&b, c.app)
	writeLines(&b, c.tables)
	return writeConfig(t, b.String())
}

// gatewayConfig writes a one-app config against op, the gateway on listen
// (scheme "http" or "https") and admin, with serverExtra lines added to
// [server].
func gatewayConfig(t *testing.T, op *testop.OP, scheme, listen, admin, serverExtra string) string {
	t.Helper()
	return testConfig{op: op, scheme: scheme, listen: listen, admin: admin, server: serverExtra}.write(t)
}

// writeConfig writes body as a config file of the test and returns its
// path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLines writes s (if any) to b as whole lines.
func writeLines(b *strings.Builder, s string) {
	if s = strings.Trim(s, "\n"); s != "" {
		b.WriteString(s + "\n")
	}
}
