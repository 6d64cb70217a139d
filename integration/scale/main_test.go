//go:build integration

// Package scale is the node-scale benchmark behind "make bench": the real
// nri-csig daemon on a real containerd holding 100, 1,000 and 10,000 small
// signed images (BENCH_SIZES), with their signatures in a loopback
// registry. It measures boot (cold and warm), memory, decision latency
// (steady, during a reload, on a resolution miss), create latency with and
// without the plugin, memory after most images are deleted, and "nri-csig
// verify" against "cosign verify --key". It prints one table at the end and
// writes it to BENCH_OUT (BENCHMARKS.md under make bench).
//
// It holds benchmarks only: "go test -run" finds nothing here, so it never
// runs in "make test".
package scale

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

var (
	tools *testbed.Tools
	work  string // keys, bundle, archives
	table results
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the scale benchmark needs root (it runs containerd and runc)")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if tools, err = testbed.EnsureTools(); err != nil {
		fmt.Fprintln(os.Stderr, "scale setup:", err)
		return 1
	}
	if work, err = os.MkdirTemp("", "nri-csig-scale-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	table.commit = commitNow()
	code := m.Run()
	if len(table.rows) > 0 || len(table.verify) > 0 || len(table.index) > 0 || len(table.inproc) > 0 {
		fmt.Println("\n" + table.markdown())
		if err := table.save(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

// save writes the table so far to BENCH_OUT (when set): after each size, so
// that a run cut short keeps what it measured.
func (r *results) save() error {
	path := os.Getenv("BENCH_OUT")
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(r.document(r.markdown())), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	progress("wrote %s", path)
	return nil
}

// progress prints one line of what the benchmark is doing, with the time.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// sizes are the image counts to measure (BENCH_SIZES, default 100 1000 10000).
func sizes(b *testing.B) []int {
	spec := os.Getenv("BENCH_SIZES")
	if spec == "" {
		spec = "100 1000 10000"
	}
	var out []int
	for _, f := range strings.Fields(spec) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 10 {
			b.Fatalf("BENCH_SIZES: %q is not an image count of at least 10", f)
		}
		out = append(out, n)
	}
	return out
}

// envInt reads a positive integer setting with a default.
func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s: %q is not a positive integer", key, v)
	}
	return n
}

// cli runs the nri-csig binary with a deadline.
func cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.NRICsig, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("nri-csig %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// keyPair makes an nri-csig key pair under work and returns its paths.
func keyPair(b *testing.B, name string) (priv, pub string) {
	prefix := filepath.Join(work, name)
	if _, err := os.Stat(prefix + ".key"); err != nil {
		if _, err := cli("generate-key", "--output-key-prefix", prefix); err != nil {
			b.Fatal(err)
		}
	}
	return prefix + ".key", prefix + ".pub"
}
