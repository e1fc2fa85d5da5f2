package main

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The config file is decoded key by key, so that a wrong type or an
// unparsable duration is one problem among the others rather than the end
// of the check. BurntSushi/toml parses the file once; its Primitive values
// let each key be decoded on its own, and its key list gives the file
// order in which problems are reported.

// keyError is a problem at one key path, such as "apps[0].clock_skew".
type keyError struct {
	path, msg string
}

func (e keyError) Error() string { return e.path + ": " + e.msg }

// decodeConfig decodes the TOML document data into the struct *cfg. A
// syntax error ends it (the error has the line); every other problem (an
// unknown key, a wrong type, a bad duration) is returned with its key
// path, and the rest of the document is still decoded.
func decodeConfig(data string, cfg any) (keyOrder, []error, error) {
	var root map[string]toml.Primitive
	md, err := toml.Decode(data, &root)
	if err != nil {
		return nil, nil, err
	}
	d := configDecoder{md: &md}
	d.table(root, reflect.ValueOf(cfg).Elem(), "")
	return newKeyOrder(md), d.errs, nil
}

type configDecoder struct {
	md   *toml.MetaData
	errs []error
}

var durationType = reflect.TypeFor[time.Duration]()

// table decodes the keys of one TOML table into the struct rv.
func (d *configDecoder) table(tbl map[string]toml.Primitive, rv reflect.Value, path string) {
	fields := map[string]reflect.Value{}
	structFields(rv, fields)
	for key, prim := range tbl {
		p := joinKey(path, key)
		f, ok := fields[key]
		if !ok {
			d.errs = append(d.errs, keyError{p, "unknown key"})
			continue
		}
		d.value(prim, f, p)
	}
}

// value decodes one key into f: a table or an array of tables key by key,
// anything else with the library's own decoding.
func (d *configDecoder) value(prim toml.Primitive, f reflect.Value, path string) {
	switch {
	case isTable(f.Type()):
		var sub map[string]toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &sub); err != nil {
			d.errs = append(d.errs, keyError{path, "must be a table"})
			return
		}
		d.table(sub, f, path)
	case f.Kind() == reflect.Slice && isTable(f.Type().Elem()):
		var items []toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &items); err != nil {
			d.errs = append(d.errs, keyError{path, "must be an array of tables ([[" + path + "]] entries)"})
			return
		}
		s := reflect.MakeSlice(f.Type(), len(items), len(items))
		for i := range items {
			d.value(items[i], s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		f.Set(s)
	default:
		if err := d.md.PrimitiveDecode(prim, f.Addr().Interface()); err != nil {
			msg := tomlMessage(err)
			if f.Type() == durationType {
				msg += ` (a duration such as "30s", "10m" or "1h30m")`
			}
			d.errs = append(d.errs, keyError{path, msg})
		}
	}
}

// structFields maps the TOML keys of struct rv to its fields; the keys of
// an embedded struct without a tag belong to the same table.
func structFields(rv reflect.Value, into map[string]reflect.Value) {
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		switch {
		case sf.Anonymous && key == "" && sf.Type.Kind() == reflect.Struct:
			structFields(rv.Field(i), into)
		case !sf.IsExported() || key == "" || key == "-":
		default:
			into[key] = rv.Field(i)
		}
	}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
)

// isTable reports whether values of t are decoded key by key.
func isTable(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]() &&
		!p.Implements(textUnmarshaler) && !p.Implements(tomlUnmarshaler)
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// tomlPrefix is the library's "toml: line N (last key ...): " lead; the
// key path replaces it.
var tomlPrefix = regexp.MustCompile(`^toml: (?:error: )?(?:line \d+ )?(?:\(last key "[^"]*"\): )?`)

func tomlMessage(err error) string {
	if perr, ok := errors.AsType[toml.ParseError](err); ok {
		return perr.Message
	}
	return tomlPrefix.ReplaceAllString(err.Error(), "")
}

// keyOrder is the position in the file of each key path, with array of
// tables entries indexed: "apps[1].downstream[0].notify".
type keyOrder map[string]int

func newKeyOrder(md toml.MetaData) keyOrder {
	order := keyOrder{}
	entries := map[string]int{} // [[table]] entries so far, by indexed path
	for i, k := range md.Keys() {
		var b strings.Builder
		for j, part := range k {
			if j > 0 {
				b.WriteByte('.')
			}
			b.WriteString(part)
			if md.Type(k[:j+1]...) != "ArrayHash" {
				continue
			}
			p := b.String()
			if j == len(k)-1 {
				entries[p]++ // a [[table]] header starts an entry
			}
			fmt.Fprintf(&b, "[%d]", max(entries[p]-1, 0))
		}
		if _, seen := order[b.String()]; !seen {
			order[b.String()] = i
		}
	}
	return order
}

// of is the position of the problem line "path: message": its key's, or
// for a key the file lacks the nearest table's that it has, or else after
// every key.
func (o keyOrder) of(line string) int {
	path, _, ok := strings.Cut(line, ": ")
	for ok && path != "" {
		if pos, found := o[path]; found {
			return pos
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return len(o) + 1<<20
}

// sortProblems orders the problem lines of value (decoding, ${ENV}) and
// later (validation) problems by file position. A key with a value
// problem keeps only that one: its value is left empty, which a
// validation would report again ("is required").
func (o keyOrder) sortProblems(value, later []error) []string {
	var lines []string
	bad := map[string]bool{}
	for _, err := range value {
		path, _, _ := strings.Cut(err.Error(), ": ")
		bad[path] = true
		lines = append(lines, err.Error())
	}
	if err := errors.Join(later...); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if path, _, _ := strings.Cut(line, ": "); !bad[path] && !slices.Contains(lines, line) {
				lines = append(lines, line)
			}
		}
	}
	slices.SortStableFunc(lines, func(a, b string) int { return cmp.Compare(o.of(a), o.of(b)) })
	return lines
}
