package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// TestHelpFlag: -h (and -help) prints the usage with every flag on stdout
// and succeeds, without reading a config.
func TestHelpFlag(t *testing.T) {
	for _, flag := range []string{"-h", "-help", "--help"} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"bffgate", flag, "-config", "/nonexistent.toml"}, env(nil), &stdout, &stderr)
		if err != nil {
			t.Errorf("%s: %v", flag, err)
		}
		for _, want := range []string{"Usage", "-config", "-check-config", "-healthcheck", "-version"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", flag, want, stdout.String())
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("%s: stderr = %q", flag, stderr.String())
		}
	}
}

// TestUnknownFlag: a wrong flag is still an error, with the usage on
// stderr.
func TestUnknownFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bffgate", "-chek-config"}, env(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "-check-config") || stdout.Len() != 0 {
		t.Errorf("err = %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}

// TestVersionFlag: -version prints the version ("devel" when the build did
// not set one) and the commit, without reading a config.
func TestVersionFlag(t *testing.T) {
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"bffgate", "-version", "-config", "/nonexistent.toml"}, env(nil), &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^bffgate devel\ncommit: `).MatchString(stdout.String()) {
		t.Errorf("-version printed %q, want bffgate devel and a commit line", stdout.String())
	}
}

// TestVersionText: the version from -ldflags, else the module's (go
// install), else devel; the commit from the build's VCS stamp.
func TestVersionText(t *testing.T) {
	stamp := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		version, commit string
		bi              *debug.BuildInfo
		want            []string
	}{
		{"v1.2.3", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: stamp}, []string{"bffgate v1.2.3\n", "commit: 0123abcd (modified)\n"}},
		{"", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, []string{"bffgate v1.4.0\n", "commit: unknown"}},
		{"", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: stamp[:1]}, []string{"bffgate devel\n", "commit: 0123abcd\n"}},
		{"", "", nil, []string{"bffgate devel\n", "commit: unknown"}},
		// A container build has no .git: the commit given with -X main.commit.
		{"v1.2.3", "feedbeef", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, []string{"bffgate v1.2.3\n", "commit: feedbeef\n"}},
		// The toolchain's own stamp wins over -X main.commit.
		{"", "feedbeef", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: stamp[:1]}, []string{"commit: 0123abcd\n"}},
	} {
		got := formatVersion(tc.version, tc.commit, tc.bi)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("formatVersion(%q, %+v) = %q, want %q", tc.version, tc.bi, got, w)
			}
		}
	}
}

// TestVersionOfABuild: a binary built like the Makefile's names the
// version given by -ldflags, and in a git clone (not a worktree, which Go
// does not stamp) the commit. -buildvcs is explicit because GOFLAGS may
// turn it off.
func TestVersionOfABuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bffgate")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, "-ldflags", "-X main.version=v9.8.7-test", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("bffgate -version: %v", err)
	}
	want := []string{"bffgate v9.8.7-test\n", "commit: "}
	if top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err == nil && st.IsDir() {
			rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, "commit: "+strings.TrimSpace(string(rev)))
		}
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("-version printed %q, want %q", out, w)
		}
	}
}
