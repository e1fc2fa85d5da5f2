// Package bffgate_test holds repository-wide checks: the import rules of
// docs/architecture.md.
package bffgate_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/bffgate/bffgate/"

// allowed lists, per package directory, the project packages its
// non-test files may import. A directory missing here may import none.
var allowed = map[string][]string{
	"session":      nil,
	"upstream":     nil,
	"proxy":        {"session", "upstream"},
	"logout":       {"session"},
	"bff":          {"session", "proxy", "logout"},
	"cmd/bffgate":  {"bff", "session", "proxy", "logout", "upstream"},
	"examples/api": nil,
	"examples/spa": nil,
}

func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		isTest := strings.HasSuffix(path, "_test.go")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			checked++
			if strings.HasPrefix(p, "github.com/labstack/echo") && dir != "bff" {
				t.Errorf("%s imports %s: only package bff may import Echo", path, p)
			}
			if !strings.HasPrefix(p, module) {
				continue
			}
			target := strings.TrimPrefix(p, module)
			if msg := checkImport(dir, target, isTest); msg != "" {
				t.Errorf("%s imports %s: %s", path, target, msg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d imports: the walk is broken", checked)
	}
}

// checkImport says what is wrong with dir importing the project package
// target, or "".
func checkImport(dir, target string, isTest bool) string {
	switch {
	case target == "bff" && dir != "cmd/bffgate":
		return "nothing but cmd/bffgate may import bff"
	case strings.HasPrefix(target, "cmd/"):
		return "nothing imports cmd"
	case target == "internal/oidcspec":
		return "" // spec identifiers shared by all; it imports nothing itself
	case target == "internal/clientauth":
		return "" // OAuth client authentication for all; it imports nothing itself
	case target == "internal/dpop":
		return "" // DPoP proofs (RFC 9449) for all; it imports nothing itself
	case target == "internal/spans":
		return "" // starting and ending spans for all; it imports nothing itself
	case target == "internal/testop":
		if isTest || dir == "internal/testop" {
			return ""
		}
		return "the test OP is for tests only"
	case target == "internal/proctest":
		// Child processes for tests (e2e, e2e/hostile, e2e/load): test
		// support, like the test OP; it imports nothing of the project.
		if isTest {
			return ""
		}
		return "the test process helpers are for tests only"
	case strings.HasPrefix(dir+"/", target+"/") || strings.HasPrefix(target+"/", dir+"/"):
		return "" // a package and its own sub-packages (session/storetest)
	case isTest && dir == "e2e":
		return ""
	case slices.Contains(allowed[dir], strings.Split(target, "/")[0]):
		return ""
	}
	return "docs/architecture.md does not allow " + dir + " to import it"
}
