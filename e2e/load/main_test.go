//go:build loadbench

package load

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Set by TestMain when the harness is enabled.
var (
	repoRoot string
	bins     struct{ gateway, upstream, bare string }
	enabled  = os.Getenv("BFFGATE_LOAD") == "1"
)

// Knobs, from the environment (see docs/benchmarks.md).
var (
	rounds      = envInt("BFFGATE_LOAD_ROUNDS", 5)
	roundDur    = envDuration("BFFGATE_LOAD_DURATION", 4*time.Second)
	warmupDur   = envDuration("BFFGATE_LOAD_WARMUP", 2*time.Second)
	connections = envInt("BFFGATE_LOAD_CONNECTIONS", 32)
	generator   = os.Getenv("BFFGATE_LOAD_GENERATOR") // "wrk", "go" or "" (wrk when installed)
	docPath     = os.Getenv("BFFGATE_LOAD_DOC")       // the file whose generated section is replaced
	withRedis   = os.Getenv("BFFGATE_LOAD_REDIS") != "0"
	withMicro   = os.Getenv("BFFGATE_LOAD_MICRO") != "0"
)

func TestMain(m *testing.M) {
	if !enabled {
		os.Exit(m.Run()) // every test skips at once
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	repoRoot = filepath.Join(wd, "..", "..")
	tmp, err := os.MkdirTemp("", "bffgate-load-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(tmp)
		bins.gateway = filepath.Join(tmp, "bffgate")
		bins.upstream = filepath.Join(tmp, "upstream")
		bins.bare = filepath.Join(tmp, "bareproxy")
		for _, b := range []struct{ out, pkg string }{
			{bins.gateway, "./cmd/bffgate"},
			{bins.upstream, "./e2e/load/upstream"},
			{bins.bare, "./e2e/load/bareproxy"},
		} {
			cmd := exec.Command(goCmd(), "build", "-o", b.out, b.pkg)
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "load: build %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func skipUnlessEnabled(t *testing.T) {
	t.Helper()
	if !enabled {
		t.Skip("load harness: set BFFGATE_LOAD=1 (or run make bench)")
	}
}

func goCmd() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}
