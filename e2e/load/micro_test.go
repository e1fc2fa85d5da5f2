//go:build loadbench

package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// microBench is one `go test -bench` run of the Go benchmarks that sit
// beside the code (the figures the load generator cannot reach).
type microBench struct {
	pkg, bench, benchtime string
}

var microBenches = []microBench{
	{"./bff", "^BenchmarkBackchannel$", "3s"},
	{"./logout", "^BenchmarkVerifyRS256$", "1s"},
	{"./bff", "^BenchmarkAPIRequest$", "1s"},
	{"./bff", "^BenchmarkAPIRequestDPoP$", "1s"},
	{"./internal/dpop", "^BenchmarkProof$", "1s"},
	{"./bff", "^BenchmarkLoginCallback$", "1s"},
	{"./proxy", "^BenchmarkProxy$", "1s"},
	{"./session", "^(BenchmarkCookieDecode|BenchmarkMemoryGet)$", "1s"},
	{"./session", "^BenchmarkRevokeBySub$", "2000x"},
	{"./session", "^BenchmarkMemoryHeapPerSession$", "1x"},
}

func (m microBench) args() []string {
	return []string{goCmd(), "test", "-run", "^$", "-bench", m.bench, "-benchmem", "-benchtime", m.benchtime, "-count", "1", m.pkg}
}

// benchLine is one result line: the name without the -GOMAXPROCS suffix
// and every "value unit" pair.
type benchLine struct {
	name    string
	metrics map[string]float64 // "ns/op", "B/op", "allocs/op", "logouts/s", …
}

// run runs m and parses its result lines.
func (m microBench) run() ([]benchLine, error) {
	args := m.args()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseBench(out), nil
}

func parseBench(out []byte) []benchLine {
	var lines []benchLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		l := benchLine{name: name, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				l.metrics[f[i+1]] = v
			}
		}
		lines = append(lines, l)
	}
	return lines
}
