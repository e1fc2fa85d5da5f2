package bff

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientJSSilentLogin runs the bundled client.js in node with a fake
// DOM: silentLogin() believes only a bffgate:silent-login message from the
// gateway's origin and its own iframe, resolves false with the reason for
// an answer or a timeout, and always removes its iframe and listener.
func TestClientJSSilentLogin(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required: %v", err)
	}
	src, err := os.ReadFile("static/client.js")
	if err != nil {
		t.Fatal(err)
	}
	js := strings.Replace(string(src), "import.meta.url", `"https://app.example/bff/client.js"`, 1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "client.mjs"), []byte(js), 0o600)
	os.WriteFile(filepath.Join(dir, "main.mjs"), []byte(`
const target = new EventTarget();
let listeners = 0;
globalThis.window = globalThis;
globalThis.addEventListener = (t, f) => { listeners++; target.addEventListener(t, f); };
globalThis.removeEventListener = (t, f) => { listeners--; target.removeEventListener(t, f); };
const frames = [];
globalThis.document = {
  createElement: () => { const f = { contentWindow: {}, setAttribute() {}, remove() { f.removed = true; } }; return f; },
  body: { appendChild: (f) => frames.push(f) },
};
const post = (data, origin, source) => {
  const e = new Event('message');
  Object.defineProperties(e, { data: { value: data }, origin: { value: origin }, source: { value: source } });
  target.dispatchEvent(e);
};
const { silentLogin, silentLoginError } = await import('./client.mjs');
const gw = 'https://app.example';
const result = async (name, p) => {
  const ok = await p;
  const f = frames[frames.length - 1];
  console.log(JSON.stringify({ name, ok, error: silentLoginError(), src: f.src, removed: !!f.removed, listeners }));
};

// Forged messages first, then the real answer.
let p = silentLogin();
let f = frames[frames.length - 1];
post({ type: 'bffgate:silent-login', ok: true }, 'https://evil.example', f.contentWindow);
post({ type: 'bffgate:silent-login', ok: true }, gw, {});
post({ type: 'something-else', ok: true }, gw, f.contentWindow);
post({ type: 'bffgate:silent-login', ok: false, error: 'login_required' }, gw, f.contentWindow);
await result('answer', p);

p = silentLogin();
f = frames[frames.length - 1];
post({ type: 'bffgate:silent-login', ok: true }, gw, f.contentWindow);
await result('ok', p);

p = silentLogin({ timeoutMs: 20 });
await result('timeout', p);
`), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--no-warnings", "main.mjs")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	want := []string{
		`{"name":"answer","ok":false,"error":"login_required","src":"https://app.example/bff/silent-login","removed":true,"listeners":0}`,
		`{"name":"ok","ok":true,"error":null,"src":"https://app.example/bff/silent-login","removed":true,"listeners":0}`,
		`{"name":"timeout","ok":false,"error":"timeout","src":"https://app.example/bff/silent-login","removed":true,"listeners":0}`,
	}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("node printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
