package hostile

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/bffgate/bffgate/internal/proctest"
)

// proc is a child process of the test.
type proc struct {
	*proctest.Proc
	name string
	log  *proctest.Buffer
}

// startProc runs bin, stopped (SIGTERM, then SIGKILL after 5 s) when the
// test ends; on failure the tail of its output goes to t.Log.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	lb := &proctest.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lb, lb
	pp, err := proctest.Start(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{Proc: pp, name: name, log: lb}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, proctest.Tail(p.log.String(), 40))
		}
	})
	return p
}

// waitReady polls check until it returns nil, the process exits, or ctx
// ends.
func (p *proc) waitReady(ctx context.Context, check func() error) error {
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before it was ready", p.name, p.Err())
		default:
		}
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// httpOK is a readiness check: url answers 200.
func httpOK(url string) func() error {
	return func() error {
		res, err := http.Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, res.Status)
		}
		return nil
	}
}

// eventually polls cond every 20 ms until it returns nil or d has passed,
// and returns its last error.
func eventually(d time.Duration, cond func() error) error {
	return proctest.Eventually(d, 20*time.Millisecond, cond)
}
