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
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// proc is a target process.
type proc struct {
	*proctest.Proc
	name string
	log  string // its stdout and stderr
}

// start runs bin as a child process, stopped when the test ends.
func start(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	// Output goes straight to a file (no copying in this process, which
	// shares the CPUs): the gateway's access log costs it a write per
	// request, as in production.
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	pp, err := proctest.Start(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{Proc: pp, name: name, log: log}
	t.Cleanup(p.Stop)
	return p
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
		case <-p.Done():
			return fmt.Errorf("%s exited (%v): %s", p.name, p.Err(), p.tail(5))
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
