package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const chromiumPath = "/usr/bin/chromium"

// Set by TestMain.
var (
	// repoRoot is the repository's root directory (the parent of e2e/).
	repoRoot string
	// artifactsDir is e2e/.artifacts: process logs and screenshots.
	artifactsDir string
	// bins holds the binaries built once per run: bffgate, spa, api.
	bins struct{ gateway, spa, api string }
	// skipReason is set when a prerequisite is missing outside CI: every
	// test then skips with it.
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	artifactsDir = filepath.Join(wd, ".artifacts")
	unlock, err := lockArtifacts()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer unlock()

	tmp, err := os.MkdirTemp("", "bffgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if err := prerequisites(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: %v (CI=true: the end-to-end tests must not be skipped)\n", err)
			return 1
		}
		skipReason = "e2e prerequisites missing: " + err.Error()
		fmt.Fprintln(os.Stderr, "e2e: skipping:", err)
		return m.Run()
	}
	if err := buildBinaries(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		return 1
	}
	return m.Run()
}

// lockArtifacts takes e2e/.artifacts for this run. When another run of the
// package holds it (several go test ./... in one worktree), this run writes
// to e2e/.artifacts/run-<pid>/ instead, so that neither deletes the other's
// logs and configs.
func lockArtifacts() (unlock func(), err error) {
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(artifactsDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		artifactsDir = filepath.Join(artifactsDir, fmt.Sprintf("run-%d", os.Getpid()))
		fmt.Fprintf(os.Stderr, "e2e: another run holds e2e/.artifacts; writing to %s\n", artifactsDir)
		return func() {}, os.MkdirAll(artifactsDir, 0o755)
	}
	// Directories of earlier concurrent runs that have ended.
	old, _ := filepath.Glob(filepath.Join(artifactsDir, "run-*"))
	for _, dir := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "run-"))
		if err != nil || syscall.Kill(pid, 0) != nil {
			_ = os.RemoveAll(dir)
		}
	}
	return func() { f.Close() }, nil
}

// prerequisites checks node, the IdP's node_modules (installing them with
// npm ci when missing, as `make test` does) and Chromium.
func prerequisites() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		return fmt.Errorf("chromium is not installed at %s", chromiumPath)
	}
	for _, dir := range []string{"examples/idp", "e2e/idp6"} {
		if err := npmCI(dir); err != nil {
			return err
		}
	}
	return nil
}

// npmCI installs the locked node_modules of dir (relative to the repository
// root) unless oidc-provider is there already.
func npmCI(dir string) error {
	abs := filepath.Join(repoRoot, filepath.FromSlash(dir))
	if _, err := os.Stat(filepath.Join(abs, "node_modules", "oidc-provider", "package.json")); err == nil {
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("%s/node_modules is missing and npm is not installed", dir)
	}
	fmt.Fprintf(os.Stderr, "e2e: installing %s/node_modules (npm ci)\n", dir)
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = abs
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	return nil
}

// buildBinaries builds the gateway, the sample SPA and the sample API into dir.
func buildBinaries(dir string) error {
	goBin := "go"
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bins.gateway = filepath.Join(dir, "bffgate"+exe)
	bins.spa = filepath.Join(dir, "spa"+exe)
	bins.api = filepath.Join(dir, "api"+exe)
	for pkg, out := range map[string]string{
		"./cmd/bffgate":  bins.gateway,
		"./examples/spa": bins.spa,
		"./examples/api": bins.api,
	} {
		cmd := exec.Command(goBin, "build", "-o", out, pkg)
		cmd.Dir = repoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// requirePrereqs skips t when TestMain found a prerequisite missing, or
// with -short; never under CI=true (TestMain fails there instead).
func requirePrereqs(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("end-to-end test: skipped with -short")
	}
}
