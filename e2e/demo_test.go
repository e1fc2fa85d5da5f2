package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The demo scripts (examples/demo.sh, examples/demo-replicas.sh) run as a
// user runs them, on free ports (their DEMO_*_PORT variables), and must
// leave nothing behind when they get SIGTERM.

// demoRun is one run of a demo script: its ports, and the marker that every
// process it starts inherits in its environment.
type demoRun struct {
	env    []string
	marker string // "BFFGATE_DEMO_RUN=<random>"
	logs   string // DEMO_LOGS
	ports  map[string]int
}

// newDemoRun picks free ports for the names given (e.g. DEMO_GATEWAY_PORT)
// and kills, when the test ends, any process still carrying its marker.
func newDemoRun(t *testing.T, names ...string) *demoRun {
	t.Helper()
	d := &demoRun{
		marker: "BFFGATE_DEMO_RUN=" + rand.Text(),
		logs:   filepath.Join(t.TempDir(), "logs"),
		ports:  map[string]int{},
	}
	d.env = append(d.env, d.marker, "DEMO_LOGS="+d.logs)
	for i, p := range freePorts(t, len(names)) {
		d.ports[names[i]] = p
		d.env = append(d.env, names[i]+"="+strconv.Itoa(p))
	}
	t.Cleanup(func() {
		for _, pid := range d.leftovers() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return d
}

func (d *demoRun) url(name, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.ports[name], path)
}

// leftovers lists the processes (Linux /proc) whose environment carries
// the run's marker.
func (d *demoRun) leftovers() []int {
	want := []byte(d.marker + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func describePids(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "\n  %d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return b.String()
}

// stopAndCheck sends SIGTERM to the script's process alone (as kill -TERM
// <pid> does) and checks that it exits, that none of its processes
// remain, and that nothing listens on its ports any more.
func (d *demoRun) stopAndCheck(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30 s of SIGTERM; its processes:%s", p.name, describePids(d.leftovers()))
	}
	if err := eventually(5*time.Second, func() error {
		if left := d.leftovers(); len(left) > 0 {
			return fmt.Errorf("processes left after SIGTERM:%s", describePids(left))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for name, port := range d.ports {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s (%d) still accepts connections after SIGTERM", name, port)
		}
	}
}

// TestDemoScriptStops runs examples/demo.sh, waits until the gateway is
// ready, sends the script SIGTERM, and checks that everything it started
// is gone.
func TestDemoScriptStops(t *testing.T) {
	requirePrereqs(t)
	d := newDemoRun(t, "DEMO_GATEWAY_PORT", "DEMO_ADMIN_PORT", "DEMO_IDP_PORT", "DEMO_SPA_PORT", "DEMO_API_PORT")
	p := startProc(t, artifactDir(t), "demo", d.env, "bash", "examples/demo.sh")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, u := range []string{
		d.url("DEMO_ADMIN_PORT", "/readyz"),
		d.url("DEMO_GATEWAY_PORT", "/bff/client.js"),
		d.url("DEMO_IDP_PORT", "/healthz"),
		d.url("DEMO_SPA_PORT", "/healthz"),
		d.url("DEMO_API_PORT", "/healthz"),
	} {
		if err := p.waitHTTP(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventually(10*time.Second, func() error {
		if !strings.Contains(p.log.String(), "demo is up") {
			return fmt.Errorf("no banner yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("demo.sh printed no banner: %v", err)
	}
	d.stopAndCheck(t, p)
}
