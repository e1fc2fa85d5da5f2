package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The repository's config.toml is the reference for every key (its first
// lines say so). These tests keep it that way: a key added to a Config
// struct without a line in config.toml fails TestConfigTOMLDocumentsEveryKey,
// and a key documented there (even commented out) that the decoder does not
// accept fails TestConfigTOMLKeysAreAccepted.

const repoConfig = "../../config.toml"

// configKeys lists the key paths of t's toml tags, e.g.
// "server.rate_limits.login.rate" or "apps.downstream.sid" (arrays of
// tables without an index). Embedded structs without a tag put their keys
// in the enclosing table, as the decoder does.
func configKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case f.Anonymous && tag == "":
			keys = append(keys, configKeys(f.Type, prefix)...)
			continue
		case tag == "" || tag == "-" || !f.IsExported():
			continue
		}
		key := prefix + tag
		keys = append(keys, key)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
			keys = append(keys, configKeys(ft, key+".")...)
		}
	}
	return keys
}

var (
	tableHeader = regexp.MustCompile(`^\s*#?\s*\[\[?\s*([a-z0-9_.]+)\s*\]\]?\s*$`)
	// A key name before "=", at the start of a line (commented out or
	// not) or inside an inline table.
	keyName = regexp.MustCompile(`(?:^\s*#?\s*|[{,]\s*)([a-z][a-z0-9_]*)\s*=`)
)

// documentedKeys maps each table of config.toml ("" for the top level,
// "server", "apps.apis", …) to the key names that appear in it, set or
// commented out. A block of comments right before a table header belongs
// to that table: it introduces it.
func documentedKeys(text string) map[string][]string {
	out := map[string][]string{}
	table := ""
	var pending []string // keys in the comment block being read
	for line := range strings.Lines(text) {
		if m := tableHeader.FindStringSubmatch(line); m != nil {
			table = m[1]
			out[table] = append(out[table], pending...)
			pending = nil
			continue
		}
		var names []string
		for _, m := range keyName.FindAllStringSubmatch(line, -1) {
			names = append(names, m[1])
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			pending = append(pending, names...)
			continue
		}
		out[table] = append(out[table], pending...)
		out[table] = append(out[table], names...)
		pending = nil
	}
	out[table] = append(out[table], pending...)
	return out
}

func TestConfigTOMLDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	doc := documentedKeys(string(data))
	keys := configKeys(reflect.TypeFor[fileConfig](), "")
	if len(keys) < 60 {
		t.Fatalf("found only %d keys in fileConfig: the walk is broken", len(keys))
	}
	for _, key := range keys {
		if _, ok := doc[key]; ok {
			continue // a table with its own header
		}
		// A key is documented in its own table, or, for the fields of an
		// inline table such as login = { rate = 10.0, burst = 50 }, in
		// the nearest enclosing table that config.toml has.
		table, leaf := "", key
		if i := strings.LastIndexByte(key, '.'); i >= 0 {
			table, leaf = key[:i], key[i+1:]
		}
		for {
			if _, ok := doc[table]; ok || table == "" {
				break
			}
			if i := strings.LastIndexByte(table, '.'); i >= 0 {
				table = table[:i]
			} else {
				table = ""
			}
		}
		if !slices.Contains(doc[table], leaf) {
			t.Errorf("config.toml does not document %s (no %q line, set or commented out, in [%s])", key, leaf+" =", table)
		}
	}
}

// commentedKey is a commented-out "key = value" line.
var commentedKey = regexp.MustCompile(`^(\s*)#\s?([a-z][a-z0-9_]*\s*=\s*\S.*)$`)

func TestConfigTOMLKeysAreAccepted(t *testing.T) {
	data, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	// Every commented-out key set, as an operator would uncomment it.
	var b strings.Builder
	uncommented := 0
	for line := range strings.Lines(string(data)) {
		if m := commentedKey.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			line = m[1] + m[2] + "\n"
			uncommented++
		}
		b.WriteString(line)
	}
	if uncommented < 20 {
		t.Fatalf("uncommented only %d keys: the pattern is broken", uncommented)
	}
	var cfg fileConfig
	md, err := toml.Decode(b.String(), &cfg)
	if err != nil {
		t.Fatalf("config.toml with every documented key set does not parse: %v", err)
	}
	for _, k := range md.Undecoded() {
		t.Errorf("config.toml documents %s, which is not a key", k)
	}
}

// TestSecurityDocKeysExist: every config key that docs/security.md's
// Limits table names is a key of the Config structs (a renamed key fails
// here rather than leaving the table wrong).
func TestSecurityDocKeysExist(t *testing.T) {
	data, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## Limits\n")
	if start < 0 {
		t.Fatal(`docs/security.md has no "## Limits" section`)
	}
	text = text[start+1:]
	if end := strings.Index(text, "\n#"); end >= 0 {
		text = text[:end]
	}
	keys := configKeys(reflect.TypeFor[fileConfig](), "")
	code := regexp.MustCompile("`([a-z][a-z0-9_.]*)`")
	checked := 0
	for line := range strings.Lines(text) {
		cols := strings.Split(line, "|")
		if len(cols) < 5 || strings.HasPrefix(strings.TrimSpace(cols[1]), "---") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cols[3], -1) {
			k := m[1]
			if !strings.ContainsAny(k, "._") {
				continue
			}
			checked++
			if !slices.Contains(keys, k) && !slices.Contains(keys, "server."+k) && !slices.Contains(keys, "apps."+k) {
				t.Errorf("docs/security.md's Limits table names %s, which is not a config key", k)
			}
		}
	}
	if checked < 15 {
		t.Fatalf("checked only %d keys in the Limits table: the parse is broken", checked)
	}
}
