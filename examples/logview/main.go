// Command logview is the demo's log tee: it copies the JSON log lines it
// reads on stdin unchanged to a file and shows them on stdout in slog's
// text format (key=value, in the line's order). Lines that are not JSON
// objects are shown as they are. It ignores SIGINT and SIGTERM and ends
// at the end of its input, so that the program whose output it reads can
// log its shutdown. Standard library only.
//
//	bffgate -config c.toml 2>&1 | logview -file gateway.log
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "logview:", err)
		os.Exit(1)
	}
}

var levels = map[string]int{"DEBUG": -4, "INFO": 0, "WARN": 4, "ERROR": 8}

func run(args []string, in io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("logview", flag.ContinueOnError)
	flags.SetOutput(stderr)
	file := flags.String("file", "", "append the lines as read to this file")
	prefix := flags.String("prefix", "", "put this before every line shown")
	minLevel := flags.String("level", "debug", "show only lines at this level or above (debug, info, warn, error)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	min, ok := levels[strings.ToUpper(*minLevel)]
	if !ok {
		return fmt.Errorf("-level %q: want debug, info, warn or error", *minLevel)
	}
	var raw io.Writer = io.Discard
	if *file != "" {
		f, err := os.OpenFile(*file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		raw = f
	}
	if *prefix != "" {
		*prefix += " "
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if _, err := fmt.Fprintf(raw, "%s\n", line); err != nil {
			return err
		}
		text, level := render(line)
		if level >= min {
			fmt.Fprintf(stdout, "%s%s\n", *prefix, text)
		}
	}
	return sc.Err()
}

// render turns one JSON object into key=value pairs in the order of the
// line, and reports its level (INFO when it has none).
func render(line []byte) (string, int) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return string(line), 0
	}
	var b strings.Builder
	level := 0
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return string(line), 0
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return string(line), 0
		}
		val := string(v)
		var s string
		if json.Unmarshal(v, &s) == nil {
			val = s
		}
		if key == "level" {
			if l, ok := levels[val]; ok {
				level = l
			}
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key + "=" + quote(val))
	}
	return b.String(), level
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " =\"\\\t\n") || !strconv.CanBackquote(s) {
		return strconv.Quote(s)
	}
	return s
}
