package bffgate_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The Dockerfile, read as Docker reads it: comments dropped, continued
// lines joined, one instruction per entry, in stages.
type dockerStage struct {
	from, name string
	args       map[string]string // ARG defaults
	env        map[string]string // ENV
	instr      [][2]string       // {keyword, rest}
}

func readDockerfile(t *testing.T) (stages []*dockerStage, header []string) {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var cur strings.Builder
	inHeader := true
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			if inHeader {
				header = append(header, strings.TrimPrefix(trimmed, "#"))
			}
			continue
		}
		inHeader = false
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			continue
		}
		kw, rest, _ := strings.Cut(text, " ")
		kw, rest = strings.ToUpper(kw), strings.TrimSpace(rest)
		if kw == "FROM" {
			f := strings.Fields(rest)
			st := &dockerStage{from: f[0], args: map[string]string{}, env: map[string]string{}}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			continue // ARGs before the first FROM
		}
		st := stages[len(stages)-1]
		st.instr = append(st.instr, [2]string{kw, rest})
		switch kw {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			st.args[k] = v
		case "ENV":
			for _, w := range shellWords(t, rest) {
				k, v, _ := strings.Cut(w, "=")
				st.env[k] = v
			}
		}
	}
	return stages, header
}

// shellWords splits one simple shell command as sh would: quotes and
// backslashes; no expansion (done by the caller).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				t.Fatalf("unbalanced %c in %q", c, s)
			}
			w.WriteString(s[i+1 : i+1+end])
			i, inWord = i+1+end, true
		case c == '\\' && i+1 < len(s):
			w.WriteByte(s[i+1])
			i, inWord = i+1, true
		case strings.IndexByte(";&|<>`()", c) >= 0:
			t.Fatalf("the build RUN line must be one simple command (the test runs it without a shell); found %q in %q", c, s)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// The build stage's `go build`, run here (in this package, apart from
// cmd/bffgate's long tests: a cold build of every dependency with these
// flags shares nothing with the other builds' cache) with the same environment and
// flags: the binary it makes is static, stripped, free of build paths, and
// runs -check-config on the shipped config with the variables the
// Dockerfile's run example passes (and BFFGATE_CONFIG from its ENV).
func TestDockerfileBuildStage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; the built binary only runs on linux")
	}
	stages, header := readDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder's Go is the one go.mod requires.
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	imageGo := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)-`).FindStringSubmatch(build.from)
	if goLine == nil || imageGo == nil || imageGo[1] != string(goLine[1]) {
		t.Errorf("builder image %q must be pinned to go.mod's go %s (an exact tag)", build.from, goLine[1])
	}

	// The one RUN line with `go build`.
	var runs []string
	for _, in := range build.instr {
		if in[0] == "RUN" && strings.Contains(in[1], "go build") {
			runs = append(runs, in[1])
		}
	}
	if len(runs) != 1 {
		t.Fatalf("want one RUN ... go build line in the build stage, got %q", runs)
	}
	vars := func(k string) string {
		switch k {
		case "TARGETOS":
			return "linux"
		case "TARGETARCH":
			return runtime.GOARCH
		}
		if v, ok := build.env[k]; ok {
			return v
		}
		return build.args[k]
	}
	words := shellWords(t, runs[0])
	for i := range words {
		words[i] = os.Expand(words[i], vars)
	}
	env := maps.Clone(build.env)
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		env[k] = v
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("RUN line %q: want [VAR=value ...] go build ...", runs[0])
	}
	args := words[2:]
	if env["CGO_ENABLED"] != "0" || env["GOOS"] != "linux" {
		t.Errorf("build env %v: want CGO_ENABLED=0 GOOS=linux", env)
	}
	if !slices.Contains(args, "-trimpath") {
		t.Errorf("go build %q: want -trimpath", args)
	}
	var ldflags string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			ldflags = v
		} else if a == "-ldflags" && i+1 < len(args) {
			ldflags = args[i+1]
		}
	}
	if f := strings.Fields(ldflags); !slices.Contains(f, "-s") || !slices.Contains(f, "-w") {
		t.Errorf("-ldflags %q: want -s -w", ldflags)
	}
	out := filepath.Join(t.TempDir(), "bffgate")
	var imageOut string
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			imageOut, args[i+1] = args[i+1], out
		}
	}
	if imageOut == "" {
		t.Fatalf("go build %q: want -o", args)
	}
	copied := false
	for _, in := range final.instr {
		copied = copied || in[0] == "COPY" && strings.Contains(in[1], "--from="+build.name+" "+imageOut+" ")
	}
	if !copied {
		t.Errorf("the final stage does not COPY --from=%s %s", build.name, imageOut)
	}

	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = root // WORKDIR /src holds the whole context
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %q with %v: %v\n%s", args, env, err, b)
	}
	checkStaticBinary(t, out, root)

	// The binary checks the shipped config with what the run example
	// passes, the config found through the image's ENV.
	cfgVar, ok := final.env["BFFGATE_CONFIG"]
	if !ok {
		t.Fatal("the final stage has no ENV BFFGATE_CONFIG")
	}
	shipped := filepath.Join(root, "config.toml")
	check := exec.Command(out, "-check-config")
	check.Env = []string{"BFFGATE_CONFIG=" + shipped}
	runExample := regexp.MustCompile(`docker run(?:[^\n]*\\\n)*[^\n]*`).FindString(strings.Join(header, "\n"))
	if runExample == "" {
		t.Fatal("the Dockerfile's comments have no docker run example")
	}
	for _, m := range regexp.MustCompile(`\s-e\s+([A-Z_][A-Z0-9_]*)`).FindAllStringSubmatch(runExample, -1) {
		check.Env = append(check.Env, m[1]+"=test-only-secret-0123456789abcdef0123456789")
	}
	if b, err := check.CombinedOutput(); err != nil || !strings.Contains(string(b), "is valid") {
		t.Errorf("%s -check-config with %q: %v\n%s", out, check.Env, err, b)
	}
	// A version stamped with -X main.version=… is what -version prints.
	if m := regexp.MustCompile(`-X main\.version=(\S+)`).FindStringSubmatch(ldflags); m != nil {
		b, err := exec.Command(out, "-version").CombinedOutput()
		if err != nil || !strings.Contains(string(b), m[1]) {
			t.Errorf("%s -version: %v, output %q, want the version %q", out, err, b, m[1])
		}
	}
	checkFinalStage(t, final, cfgVar)
}

// checkStaticBinary: no interpreter, no dynamic section (CGO off), no
// symbol table or DWARF (-s -w), no path of this checkout (-trimpath).
func checkStaticBinary(t *testing.T, path, root string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not a static binary", path, p.Type)
		}
	}
	for _, name := range []string{".dynamic", ".interp", ".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(name) != nil {
			t.Errorf("%s has a %s section", path, name)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(root+"/")) {
		t.Errorf("%s contains the build path %s (want -trimpath)", path, root)
	}
}

// checkFinalStage: non-root, distroless or scratch, and ENTRYPOINT and
// HEALTHCHECK in exec form reading the config through cfgVar (no -config
// of their own that could differ).
func checkFinalStage(t *testing.T, final *dockerStage, cfgVar string) {
	t.Helper()
	if !strings.HasPrefix(final.from, "gcr.io/distroless/") && final.from != "scratch" {
		t.Errorf("final stage FROM %s: want distroless or scratch", final.from)
	}
	exec := map[string][]string{}
	var user string
	for _, in := range final.instr {
		switch in[0] {
		case "USER":
			user = in[1]
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(in[1]), &argv); err != nil {
				t.Errorf("%s %s: want exec form: %v", in[0], in[1], err)
			}
			exec[in[0]] = argv
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in[1], " CMD ")
			var argv []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(cmd)), &argv); !ok || err != nil {
				t.Errorf("HEALTHCHECK %s: want CMD in exec form", in[1])
			}
			exec["HEALTHCHECK"] = argv
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if hc := exec["HEALTHCHECK"]; !slices.Contains(hc, "-healthcheck") {
		t.Errorf("HEALTHCHECK %q does not run -healthcheck", hc)
	}
	if len(exec["ENTRYPOINT"]) == 0 {
		t.Error("no ENTRYPOINT")
	}
	for kw, argv := range exec {
		if slices.Contains(argv, "-config") {
			t.Errorf("%s %q names -config; it must follow ENV BFFGATE_CONFIG=%s", kw, argv, cfgVar)
		}
	}
}
