//go:build integration

package scale

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// cosignVersion is the cosign release compared against (the one
// integration/cosign runs).
const cosignVersion = "v3.1.3"

// gnuTime measures a command's peak memory ("Maximum resident set size").
const gnuTime = "/usr/bin/time"

// BenchmarkVerifyVsCosign runs "nri-csig verify --key" and "cosign verify
// --key" alternately on the same image signed by cosign, in the legacy .sig
// format and in the Sigstore bundle format, in one loopback registry, each a
// fresh process under GNU time (BENCH_VERIFY_RUNS times, 10 by default), and
// reports the median wall time and peak RSS of each and their ratios.
func BenchmarkVerifyVsCosign(b *testing.B) {
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("%s is missing: apt-get install time (make bench installs it)", gnuTime)
	}
	bin, err := toolcache.Ensure(toolcache.Tool{Packages: []string{"github.com/sigstore/cosign/v3/cmd/cosign"}, Version: cosignVersion})
	if err != nil {
		b.Fatal(err)
	}
	cosign := filepath.Join(bin, "cosign")
	home := filepath.Join(work, "cosign-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		b.Fatal(err)
	}
	// cosign keeps a TUF cache under $HOME: give it an empty one.
	env := []string{"HOME=" + home, "COSIGN_YES=true", "COSIGN_PASSWORD=bench", "TUF_ROOT=" + filepath.Join(home, "tuf")}
	prefix := filepath.Join(work, "cosign")
	if _, err := os.Stat(prefix + ".key"); err != nil {
		if _, err := timed(env, cosign, "generate-key-pair", "--output-key-prefix", prefix); err != nil {
			b.Fatal(err)
		}
	}
	reg, err := testbed.StartRegistry()
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	runs := envInt(b, "BENCH_VERIFY_RUNS", 10)
	for _, format := range []string{"legacy", "bundle"} {
		b.Run(format, func(b *testing.B) {
			img, err := testbed.BusyboxImage(tools.Busybox, "verify-"+format)
			if err != nil {
				b.Fatal(err)
			}
			digest, err := reg.Push("verify/"+format+":v1", img)
			if err != nil {
				b.Fatal(err)
			}
			tag := reg.Ref("verify/" + format + ":v1")
			signArgs := []string{"sign", "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--yes", "--key", prefix + ".key"}
			if format == "legacy" {
				signArgs = append(signArgs, "--new-bundle-format=false")
			}
			if _, err := timed(env, cosign, append(signArgs, reg.Ref("verify/"+format)+"@"+digest)...); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				var ours, theirs []measured
				for range runs {
					m, err := timed(nil, tools.NRICsig, "verify", "--key", prefix+".pub", tag)
					if err != nil {
						b.Fatal(err)
					}
					ours = append(ours, m)
					m, err = timed(env, cosign, "verify", "--insecure-ignore-tlog=true", "--allow-http-registry", "--key", prefix+".pub", tag)
					if err != nil {
						b.Fatal(err)
					}
					theirs = append(theirs, m)
				}
				v := verifyResult{format: format, runs: runs}
				v.oursWall, v.oursPeak = medians(ours)
				v.cosWall, v.cosPeak = medians(theirs)
				table.addVerify(v)
				progress("verify %s: nri-csig %s %s MiB, cosign %s %s MiB", format, v.oursWall.Round(time.Millisecond), testbed.MiB(v.oursPeak), v.cosWall.Round(time.Millisecond), testbed.MiB(v.cosPeak))
				b.ReportMetric(float64(v.oursWall)/float64(v.cosWall), "wall-nri-csig/cosign")
				b.ReportMetric(float64(v.oursPeak)/float64(v.cosPeak), "peak-rss-nri-csig/cosign")
			}
		})
	}
}

// measured is one command run.
type measured struct {
	wall time.Duration
	peak int64 // bytes
}

// timed runs bin under GNU time -v and returns its wall time and peak RSS.
func timed(env []string, bin string, args ...string) (measured, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report, err := os.CreateTemp(work, "time-")
	if err != nil {
		return measured{}, err
	}
	report.Close()
	defer os.Remove(report.Name())
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-v", "-o", report.Name(), bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	m := measured{wall: time.Since(start)}
	if err != nil {
		return m, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	b, err := os.ReadFile(report.Name())
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && k == "Maximum resident set size (kbytes)" {
			kb, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return m, err
			}
			m.peak = kb * 1024
		}
	}
	if m.peak == 0 {
		return m, fmt.Errorf("GNU time reported no peak memory for %s:\n%s", bin, b)
	}
	return m, nil
}

func medians(ms []measured) (time.Duration, int64) {
	walls := make([]time.Duration, len(ms))
	peaks := make([]int64, len(ms))
	for i, m := range ms {
		walls[i], peaks[i] = m.wall, m.peak
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(peaks, func(i, j int) bool { return peaks[i] < peaks[j] })
	return walls[len(walls)/2], peaks[len(peaks)/2]
}
