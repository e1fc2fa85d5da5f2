package bffgate_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside are names of files readers of the repository do not have (the
// team's notes) and local absolute paths.
var outside = regexp.MustCompile(`\.\./shared|\b(DESIGN|SPECS|CONVENTIONS)\.md\b|(^|[\s(<"'])(/work/|/home/|/Users/|/tmp/bffgate|file://)`)

// mdLink is an inline Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsStandAlone: every Markdown file of the repository links only to
// files inside it (which exist) or to web addresses, and names no file
// outside it.
func TestDocsStandAlone(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || strings.HasPrefix(d.Name(), ".artifacts")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d names %q, outside the repository", f, i+1, strings.TrimSpace(m))
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, _, _ = strings.Cut(target, "#")
				p := filepath.Join(filepath.Dir(f), target)
				abs, err := filepath.Abs(p)
				if err != nil || !strings.HasPrefix(abs, root+string(filepath.Separator)) {
					t.Errorf("%s:%d links to %s, outside the repository", f, i+1, m[1])
					continue
				}
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s:%d links to %s, which does not exist", f, i+1, m[1])
				}
			}
		}
	}
}
