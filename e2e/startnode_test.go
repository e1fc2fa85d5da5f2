package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestStartNodeRestartsAHungStart starts a Node program that hangs (alive,
// never listening) on its first start and listens on its second: startNode
// must restart it and return the serving process.
func TestStartNodeRestartsAHungStart(t *testing.T) {
	requirePrereqs(t)
	old := nodeStartWindow
	nodeStartWindow = 2 * time.Second
	t.Cleanup(func() { nodeStartWindow = old })

	dir := artifactDir(t)
	script := filepath.Join(t.TempDir(), "hang-once.cjs")
	if err := os.WriteFile(script, []byte(`
const fs = require('node:fs');
const http = require('node:http');
if (!fs.existsSync(process.env.MARKER)) {
  fs.writeFileSync(process.env.MARKER, '');
  setInterval(() => {}, 1000); // alive, not listening
} else {
  http.createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	p := startNode(t, dir, "hang-once", []string{
		"PORT=" + strconv.Itoa(port), "MARKER=" + filepath.Join(t.TempDir(), "started"),
	}, url, script)

	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q, want ok", body)
	}
	if p.name != "hang-once-attempt2" {
		t.Errorf("serving process %q, want the second attempt (hang-once-attempt2)", p.name)
	}
}
