package bffgate_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The build context leaves out keys, builds, node packages and git.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{".git", "**/bin", "**/node_modules", "**/*.pem", "**/*.key", "**/.artifacts"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks the line %q", want)
		}
	}
}

// Keys, builds and node packages stay out of git; nothing tracked matches
// .gitignore except fixtures it names with "!".
func TestGitignore(t *testing.T) {
	if err := git("rev-parse", "--git-dir").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("not a git checkout: %v", err)
		}
		t.Skip("not a git checkout")
	}
	out, err := git("ls-files", "--cached", "--ignored", "--exclude-standard").CombinedOutput()
	if err != nil {
		t.Fatalf("git ls-files: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("tracked files match .gitignore (remove them, or whitelist a needed fixture with !path):\n%s", s)
	}
	for _, p := range []string{"signing.pem", "examples/x/tls.key", "bin/bffgate", "examples/idp/node_modules/x/index.js", "e2e/.artifacts/shot.png", ".env"} {
		if err := git("check-ignore", "-q", "--no-index", p).Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore", p)
		}
	}
}

// git runs git in the repository, trusting it whoever owns the checkout
// (CI may run as another user than the clone's owner).
func git(args ...string) *exec.Cmd {
	return exec.Command("git", append([]string{"-c", "safe.directory=*"}, args...)...)
}
