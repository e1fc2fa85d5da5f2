package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDocConfigKeys: every config key the docs name exists, as a full
// path (`server.max_connections`) or in an assignment (`allow_missing_exp
// = true`), so that a renamed key cannot leave the docs behind.
func TestDocConfigKeys(t *testing.T) {
	paths, leaves := map[string]bool{}, map[string]bool{}
	for _, k := range configKeys(reflect.TypeFor[fileConfig](), "") {
		paths[k], leaves[k[strings.LastIndexByte(k, '.')+1:]] = true, true
	}
	if !paths["server.listen"] || !paths["apps.downstream.audience"] || !leaves["allow_missing_exp"] {
		t.Fatalf("config key walk is incomplete: %d paths", len(paths))
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, "../../README.md", "../../CONTRIBUTING.md", "../../examples/README.md", "../../e2e/README.md")
	fullPath := regexp.MustCompile("`((?:server|session|proxy|signing|notifier|apps)(?:\\.[a-z_]+)+)")
	assign := regexp.MustCompile("`([a-z][a-z0-9_]*) = ")
	files := map[string]bool{"js": true, "mjs": true, "go": true, "md": true, "toml": true, "json": true}
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range fullPath.FindAllStringSubmatchIndex(line, -1) {
				key := line[m[2]:m[3]]
				if files[key[strings.LastIndexByte(key, '.')+1:]] || strings.ContainsAny(line[m[3]:min(m[3]+1, len(line))], "(ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") {
					continue // a file name such as server.js, or JavaScript (session.sidFor(…))
				}
				if !paths[key] {
					t.Errorf("%s:%d names config key %s, which does not exist", filepath.Base(path), i+1, key)
				}
			}
			for _, m := range assign.FindAllStringSubmatch(line, -1) {
				if !leaves[m[1]] {
					t.Errorf("%s:%d sets config key %s, which does not exist", filepath.Base(path), i+1, m[1])
				}
			}
		}
	}
}
