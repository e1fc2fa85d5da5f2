package bff

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// fakeGateway plays a gateway that restarts, for client.js: each
// /bff/events and /bff/user request takes the next scripted answer.
type fakeGateway struct {
	mu     sync.Mutex
	events []func(w http.ResponseWriter, r *http.Request)
	users  []int
	seen   chan string // "events" or "user <code>", per request
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/bff/events":
		f.seen <- "events"
		if len(f.events) == 0 {
			http.Error(w, "no more streams scripted", http.StatusInternalServerError)
			return
		}
		next := f.events[0]
		f.events = f.events[1:]
		f.mu.Unlock()
		next(w, r)
		f.mu.Lock()
	case "/bff/user":
		code := http.StatusOK
		if len(f.users) > 0 {
			code, f.users = f.users[0], f.users[1:]
		}
		f.seen <- fmt.Sprintf("user %d", code)
		w.WriteHeader(code)
		if code == http.StatusOK {
			fmt.Fprint(w, `{"sub":"alice"}`)
		}
	default:
		http.NotFound(w, r)
	}
}

func sse(body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, body)
		w.(http.Flusher).Flush()
	}
}

// TestClientJSShutdownIsNotLogout runs the bundled client.js in node
// against a gateway that shuts down: the stream says "reconnect" (the
// client opens a new one, no logout), then the restarting gateway answers
// 502 on the stream and 503 on /bff/user (the client polls, no logout),
// then it is back (the client returns to a stream), and only the real
// "logout" event calls the callback.
func TestClientJSShutdownIsNotLogout(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required: %v", err)
	}
	fg := &fakeGateway{seen: make(chan string, 100), users: []int{503, 503, 200}}
	fg.events = []func(http.ResponseWriter, *http.Request){
		sse("retry: 5000\n: connected\n\nretry: 10\nevent: reconnect\ndata: {\"retry_ms\":10}\n\n"),
		sse("retry: 10\n: connected\n\n"), // then ends: EventSource reconnects by itself
		status(http.StatusBadGateway),     // a proxy while the gateway restarts: the client polls
		sse(": connected\n\nevent: logout\ndata: {\"cause\":\"backchannel\"}\n\n"),
	}
	srv := httptest.NewServer(fg)
	defer srv.Close()

	src, err := os.ReadFile("static/client.js")
	if err != nil {
		t.Fatal(err)
	}
	js := strings.Replace(string(src), "import.meta.url", fmt.Sprintf("%q", srv.URL+"/bff/client.js"), 1)
	js = strings.Replace(js, "const pollEveryMs = 10000;", "const pollEveryMs = 20;", 1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "client.mjs"), []byte(js), 0o600)
	os.WriteFile(filepath.Join(dir, "main.mjs"), []byte(`
globalThis.window = globalThis;
const { onLogout } = await import('./client.mjs');
onLogout((d) => { console.log('LOGOUT ' + JSON.stringify(d)); process.exit(0); });
`), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--experimental-eventsource", "--no-warnings", "main.mjs")
	cmd.Dir = dir
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	lines := proctest.Lines(out, 10)

	// The requests the client makes, in order, until it is back on a
	// stream after the polls; a logout line before that fails the test.
	want := []string{"events", "events", "events", "user 503", "user 503", "user 200", "events"}
	var got []string
	for len(got) < len(want) {
		select {
		case r := <-fg.seen:
			got = append(got, r)
		case l := <-lines:
			t.Fatalf("the client fired %q during a shutdown (requests so far: %v)", l, got)
		case <-ctx.Done():
			t.Fatalf("requests %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("requests %v, want %v", got, want)
	}
	// The stream it came back on ends the session: now it is a logout.
	select {
	case l := <-lines:
		if l != `LOGOUT {"cause":"backchannel"}` {
			t.Fatalf("client printed %q, want the backchannel logout", l)
		}
	case <-ctx.Done():
		t.Fatal("the logout event never reached the callback")
	}
}

func status(code int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}
