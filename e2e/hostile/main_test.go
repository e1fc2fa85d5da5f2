package hostile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Set by TestMain.
var (
	// gatewayBin is the bffgate binary built for this run.
	gatewayBin string
	// redisServer is the path of redis-server.
	redisServer string
	// skipReason is set when a prerequisite is missing outside CI.
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	redisServer, err = exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "hostile: FAIL: redis-server is not installed (CI=true: this test must not be skipped)")
			return 1
		}
		skipReason = "redis-server is not installed"
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "bffgate-hostile-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gatewayBin = filepath.Join(tmp, "bffgate")
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", gatewayBin, "./cmd/bffgate")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "hostile: build ./cmd/bffgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func requirePrereqs(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
