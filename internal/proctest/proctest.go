// Package proctest owns the child processes that tests start (gateways,
// example servers, IdPs, Redis): each runs in a process group of its own,
// is killed by the kernel if the test binary dies, and is stopped with
// SIGTERM to its group, then SIGKILL; and the waiting for what they do.
// Test support only: the import rules
// keep it out of non-test code.
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const StopGrace = 5 * time.Second

// Proc is a started child process.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Cmd.Wait's result, valid after done
}

// Start starts cmd in a process group of its own (so that a stop signal
// reaches everything it starts) with Pdeathsig SIGKILL (so that the kernel
// kills it if the test binary dies), and reaps it when it exits.
func Start(cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	// Pdeathsig fires when the OS thread that started the child exits, not
	// the process: start and wait from one goroutine locked to its thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the process's id, which is also its process group's.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (exec.Cmd.Wait's result); valid once
// Done is closed.
func (p *Proc) Err() error { return p.err }

// Exited reports whether the process has ended, with its exit error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after StopGrace; and
// SIGKILL to anything left in the group once the process has exited.
func (p *Proc) Stop() {
	pgid := p.Pid()
	select {
	case <-p.done:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // anything it left behind
		return
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// FreeAddr returns a loopback address that was free a moment ago; the
// caller listens on it at once.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Eventually calls cond every interval until it returns nil or d has
// passed, and returns its last error.
func Eventually(d, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// Tail returns the last n lines of a process's output s, after a line
// that counts the ones left out.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Buffer keeps output written concurrently (a process's stdout and
// stderr, a logger's lines) for the test to read.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines sends each line of r (a process's output, an event stream) to
// the returned channel, which has room for n lines, and closes it when r
// ends or fails.
func Lines(r io.Reader, n int) <-chan string {
	lines := make(chan string, n)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}
