package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// testSecret is long enough for every secret the config checks.
const testSecret = "test-only-secret-0123456789abcdef0123456789"

// configVars are the environment variables config.toml references, as
// the loader asks for them.
func configVars(t *testing.T) []string {
	t.Helper()
	var names []string
	if _, err := loadConfig("../../config.toml", func(k string) string {
		names = append(names, k)
		return testSecret
	}); err != nil {
		t.Fatalf("config.toml: %v", err)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// runExampleVars are the -e NAME of every `docker run` in text.
func runExampleVars(text string) []string {
	var names []string
	for _, run := range regexp.MustCompile(`docker run(?:[^\n]*\\\n)*[^\n]*`).FindAllString(text, -1) {
		for _, m := range regexp.MustCompile(`(?:^|\s)-e\s+([A-Z_][A-Z0-9_]*)`).FindAllStringSubmatch(run, -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Every run example (the Dockerfile's, the README's, the docs') passes
// every variable the shipped config references, or the container exits
// at start.
func TestRunExamplesPassConfigVars(t *testing.T) {
	want := configVars(t)
	if len(want) == 0 {
		t.Fatal("config.toml references no ${VAR}; the test reads nothing")
	}
	files := []string{"../../Dockerfile", "../../README.md", "../../docs/operations.md"}
	seen := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if f == "../../Dockerfile" { // the run example is in comments
			text = regexp.MustCompile(`(?m)^#\s?`).ReplaceAllString(text, "")
		}
		if !strings.Contains(text, "docker run") {
			continue
		}
		seen++
		if got := runExampleVars(text); !slices.Equal(got, want) {
			t.Errorf("%s: docker run passes -e %v; config.toml references %v", f, got, want)
		}
	}
	if seen == 0 {
		t.Error("no docker run example found")
	}
}
