package bffgate_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// badLogKeys are keys no log line may use: "err" is the key of errors,
// and slog's own keys would be written twice.
var badLogKeys = map[string]string{
	"error": `use "err" for errors`,
	"msg":   "slog writes the message under msg",
	"time":  "slog writes the time under time",
	"level": "slog writes the level under level",
}

// TestLogKeys keeps one set of log keys: every slog call (a logger's
// Debug…LogAttrs and With, and slog's Attr constructors) is checked for
// the keys above and for a key given twice in one call.
func TestLogKeys(t *testing.T) {
	fset := token.NewFileSet()
	calls := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			keys, ok := logKeys(call)
			if !ok {
				return true
			}
			calls++
			seen := map[string]bool{}
			for _, k := range keys {
				if why, bad := badLogKeys[k]; bad {
					t.Errorf("%s: log key %q: %s", fset.Position(call.Pos()), k, why)
				}
				if seen[k] {
					t.Errorf("%s: log key %q given twice", fset.Position(call.Pos()), k)
				}
				seen[k] = true
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 50 {
		t.Fatalf("checked only %d log calls: the walk is broken", calls)
	}
}

// msgArg is, per logger method, the index of the message argument; the
// key-value pairs follow it.
var msgArg = map[string]int{
	"Debug": 0, "Info": 0, "Warn": 0, "Error": 0,
	"DebugContext": 1, "InfoContext": 1, "WarnContext": 1, "ErrorContext": 1,
	"Log": 2, "LogAttrs": 2, "With": -1,
}

// logKeys returns the literal keys of a slog call, and whether call is
// one: a method of a receiver named like a logger (logger, log, slog),
// or an Attr constructor of package slog.
func logKeys(call *ast.CallExpr) ([]string, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return nil, false
	}
	if k, ok := attrKey(call); ok {
		return []string{k}, true
	}
	at, ok := msgArg[sel.Sel.Name]
	if !ok || !isLoggerExpr(sel.X) {
		return nil, false
	}
	var keys []string
	args := call.Args[min(at+1, len(call.Args)):]
	for i := 0; i < len(args); {
		if _, ok := attrKey(args[i]); ok {
			i++ // counted when the walk reaches the constructor
			continue
		}
		if k, ok := stringLit(args[i]); ok {
			keys = append(keys, k)
			i += 2
			continue
		}
		i++ // a spread slice or an Attr variable
	}
	return keys, true
}

// isLoggerExpr reports whether x names a logger: its last identifier
// contains "log" (logger, nt.log, g.logger, slog).
func isLoggerExpr(x ast.Expr) bool {
	var name string
	switch x := x.(type) {
	case *ast.Ident:
		name = x.Name
	case *ast.SelectorExpr:
		name = x.Sel.Name
	case *ast.CallExpr: // logger.With(…).Info
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "With" {
			return isLoggerExpr(sel.X)
		}
	}
	return strings.Contains(strings.ToLower(name), "log")
}

// attrKey returns the literal key of slog.String("k", …) and the other
// Attr constructors.
func attrKey(x ast.Expr) (string, bool) {
	call, ok := x.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "slog" {
		return "", false
	}
	switch sel.Sel.Name {
	case "Any", "Bool", "Duration", "Float64", "Group", "Int", "Int64", "String", "Time", "Uint64":
		return stringLit(call.Args[0])
	}
	return "", false
}

func stringLit(x ast.Expr) (string, bool) {
	lit, ok := x.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
