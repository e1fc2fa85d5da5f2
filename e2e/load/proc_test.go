//go:build loadbench

package load

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a free loopback address; the caller listens on it at once.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a target process, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error
}

// start runs bin as a child process, stopped when the test ends.
func start(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	// Output goes straight to a file (no copying in this process, which
	// shares the CPUs): the gateway's access log costs it a write per
	// request, as in production.
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	defer f.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = repoRoot
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the thread that started the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls url until it answers 200, the process exits, or 15 s
// pass; the error carries the process's last output.
func (p *proc) waitReady(url string) error {
	return p.waitFor("ready at "+url, 50*time.Millisecond, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitListening polls addr until a TCP connection succeeds.
func (p *proc) waitListening(addr string) error {
	return p.waitFor("listening on "+addr, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// waitFor polls ok every interval until it holds, the process exits, or
// 15 s pass; the error carries the process's last output.
func (p *proc) waitFor(what string, interval time.Duration, ok func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.tail(5))
		default:
		}
		if ok() {
			return nil
		}
		time.Sleep(interval)
	}
	return fmt.Errorf("%s not %s after 15s: %s", p.name, what, p.tail(5))
}

// tail returns the last n lines of the process's output.
func (p *proc) tail(n int) string {
	f, err := os.Open(p.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	buf := make([]byte, 8<<10)
	if st, err := f.Stat(); err == nil && st.Size() > int64(len(buf)) {
		_, _ = f.Seek(st.Size()-int64(len(buf)), 0)
	}
	k, _ := io.ReadFull(f, buf)
	lines := strings.Split(strings.TrimSpace(string(buf[:k])), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
