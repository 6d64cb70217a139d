//go:build integration

package scale

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

// BenchmarkInProcess puts the in-process figures of issue 12 in the table:
// it runs the unit benchmarks that measure them (the one copy of each) in a
// child "go test" and reads their metrics.
//   - the node decision with 10,000 exemptions and 10,000 revocations
//     (pkg/decision BenchmarkDecide10kRules): p50 and p99;
//   - the plugin's own CPU per container, CreateContainer + validation +
//     audit record (pkg/plugin BenchmarkContainer), for each audit sink,
//     deciding at once (the common case) and on a bounded goroutine;
//     the journald one only when a journal socket is there;
//   - 100 signatures checked against 10 keys (pkg/verify BenchmarkVerify100x10).
func BenchmarkInProcess(b *testing.B) {
	type bench struct {
		pkg, name, benchtime string
		env                  []string
	}
	benches := []bench{
		{"./pkg/decision/", "^BenchmarkDecide10kRules$", "20000x", nil},
		{"./pkg/plugin/", "^BenchmarkContainer$/^path=(now|goroutine)$/^audit=(json|none)$", "20000x", nil},
		{"./pkg/verify/", "^BenchmarkVerify100x10$", "20x", nil},
	}
	if journal.Enabled() {
		benches = append(benches, bench{"./pkg/plugin/", "^BenchmarkContainer$/^path=now$/^audit=journald$", "3000x", []string{"NRI_CSIG_BENCH_JOURNALD=1"}})
	}
	for range b.N {
		for _, bn := range benches {
			cmd := exec.Command("go", "test", "-run", "^$", "-bench", bn.name, "-benchtime", bn.benchtime, "-benchmem", bn.pkg)
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), bn.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
			}
			for _, m := range benchLines(out) {
				table.addInProcess(m)
			}
		}
	}
}

// benchMetrics is one result line of "go test -bench": its name and each
// value by unit (ns/op, p99-ns, cpu-ns/op ...).
type benchMetrics struct {
	name   string
	values map[string]float64
}

func benchLines(out []byte) []benchMetrics {
	var ms []benchMetrics
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m := benchMetrics{name: f[0], values: map[string]float64{}}
		if i := strings.LastIndexByte(m.name, '-'); i > 0 {
			m.name = m.name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m.values[f[i+1]] = v
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// inProcessText is a table cell for m.
func inProcessText(m benchMetrics) string {
	us := func(unit string) string { return fmt.Sprintf("%.1f µs", m.values[unit]/1000) }
	switch {
	case strings.HasPrefix(m.name, "BenchmarkDecide10kRules"):
		return fmt.Sprintf("p50 %s / p99 %s", us("p50-ns"), us("p99-ns"))
	case strings.HasPrefix(m.name, "BenchmarkContainer"):
		return fmt.Sprintf("%s CPU (%s wall)", us("cpu-ns/op"), us("ns/op"))
	default:
		return fmt.Sprintf("%s per op", us("ns/op"))
	}
}
