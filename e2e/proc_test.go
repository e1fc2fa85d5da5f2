package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// freePorts asks the OS for n free loopback ports. The listeners are held
// until all n are found (so the same port is not handed out twice) and then
// closed; the caller starts its servers on them right away.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// emptied records the artifact directories already emptied in this run.
var emptied sync.Map

// artifactDir is e2e/.artifacts/<test name>, emptied on the test's first
// call (so a run leaves only its own logs).
func artifactDir(t *testing.T) string {
	t.Helper()
	name := safeName(t.Name())
	dir := filepath.Join(artifactsDir, name)
	if _, done := emptied.LoadOrStore(name, true); !done {
		_ = os.RemoveAll(dir)
		_ = os.Remove(filepath.Join(artifactsDir, name+".png"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// logBuffer collects a process's output (stdout and stderr together), keeps
// it in memory for the test to search, and copies it to a file.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func newLogBuffer(path string) (*logBuffer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logBuffer{file: f}, nil
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	_, _ = l.file.Write(p)
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the complete lines written so far.
func (l *logBuffer) Lines() []string {
	s := l.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	} else {
		return nil
	}
	return strings.Split(s, "\n")
}

// proc is a child process of a test.
type proc struct {
	*proctest.Proc
	name string
	log  *logBuffer
}

// startProc starts a child process whose output goes to
// <artifacts>/<name>.log, and stops it (SIGTERM to its process group, then
// SIGKILL after 5 s) when the test ends. On failure the log's tail is
// written to t.Log.
func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	lb, err := newLogBuffer(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = lb
	cmd.Stderr = lb
	pp, err := proctest.Start(cmd)
	if err != nil {
		lb.file.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{Proc: pp, name: name, log: lb}
	t.Cleanup(func() {
		p.Stop()
		lb.file.Close()
		if t.Failed() {
			t.Logf("---- %s output (%s) ----\n%s", name, lb.file.Name(), proctest.Tail(lb.String(), 60))
		}
	})
	return p
}

// Node's start-up window and attempts for startNode. The IdPs are listening
// within about 0.5 s here; a CI run once saw oidc-provider's process alive
// but never listening (main thread asleep in a futex, before the provider
// was built), which a restart clears.
var nodeStartWindow = 10 * time.Second // a variable for TestStartNodeRestartsAHungStart

const nodeStartAttempts = 3

// startNode starts a Node.js IdP with startProc and waits until url answers
// 200. A process that exits fails the test at once (its log says why); one
// that is alive but not listening after nodeStartWindow has hung at start:
// its state is logged, it is stopped, and it is started again, at most
// nodeStartAttempts times in all. Attempts after the first log to
// <name>-attempt<N>.log.
func startNode(t *testing.T, dir, name string, env []string, url string, args ...string) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		logName := name
		if attempt > 1 {
			logName = fmt.Sprintf("%s-attempt%d", name, attempt)
		}
		p := startProc(t, dir, logName, env, "node", args...)
		ctx, cancel := context.WithTimeout(context.Background(), nodeStartWindow)
		err := p.waitHTTP(ctx, url)
		cancel()
		if err == nil {
			return p
		}
		if done, _ := p.Exited(); done || attempt == nodeStartAttempts {
			t.Fatal(err)
		}
		t.Logf("%s hung at start (attempt %d of %d), restarting it: %v\n%s", name, attempt, nodeStartAttempts,
			err, proctest.Tail(p.log.String(), 20))
		p.Stop()
	}
}

// waitHTTP polls url until it answers 200, or the process exits.
func (p *proc) waitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v) before %s answered", p.name, err, url)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s %s", url, res.Status, strings.TrimSpace(string(body)))
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready: %w (last: %v)%s", p.name, ctx.Err(), last, p.diagnose())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// diagnose describes the process's state (Linux: state, wchan and threads'
// states from /proc), for a process that does not get ready.
func (p *proc) diagnose() string {
	pid := p.Pid()
	var b strings.Builder
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "State:") || strings.HasPrefix(line, "Threads:") {
			b.WriteString("; " + strings.TrimSpace(line))
		}
	}
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	fmt.Fprintf(&b, "; wchan %s", wchan)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		wc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, task.Name()))
		sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if f := strings.Fields(string(st)); len(f) > 2 {
			fmt.Fprintf(&b, "; task %s %s %s %s (syscall %s)", task.Name(), f[1], f[2], wc, strings.TrimSpace(string(sc)))
		}
	}
	return b.String()
}

// eventually polls cond every 50 ms until it returns nil or d has passed,
// and returns its last error.
func eventually(d time.Duration, cond func() error) error {
	return proctest.Eventually(d, 50*time.Millisecond, cond)
}
