//go:build integration

package scale

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/toolcache"
	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/sign"
)

// cosignVersion is the cosign release compared against (the one
// integration/cosign runs).
const cosignVersion = "v3.1.3"

// gnuTime measures a command's peak memory ("Maximum resident set size").
const gnuTime = "/usr/bin/time"

// verifyCase is one image whose verification is compared.
type verifyCase struct {
	format string // legacy (.sig tag) or bundle (Sigstore bundle as an OCI 1.1 referrer)
	sigs   int    // signatures attached (each over its own payload)
}

// BenchmarkVerifyVsCosign is the one comparison of "nri-csig verify --key"
// with "cosign verify --key": on the same image in one loopback registry
// (go-containerregistry's, with the referrers API), signed by cosign in the
// legacy format and in the bundle format, and with 100 legacy signatures
// (pkg/sign, each over its own payload). Each command is a fresh process
// under GNU time, run alternately BENCH_VERIFY_RUNS times (10): nri-csig
// verify from the full binary (every command), from nri-csig-cli (the
// operator's commands without the daemon's and the certificate verifiers),
// and cosign; the medians of wall time and peak
// RSS go to the table, with the registry requests each made. The floor is
// "version" of each binary: the process starting and doing nothing.
//
//	NRI_CSIG_CACHE=/work/main/.cache go test -tags integration -run '^$' -bench VerifyVsCosign -benchtime 1x ./integration/scale
func BenchmarkVerifyVsCosign(b *testing.B) {
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("%s is missing: apt-get install time (make bench installs it)", gnuTime)
	}
	bin, err := toolcache.Ensure(toolcache.Tool{Packages: []string{"github.com/sigstore/cosign/v3/cmd/cosign"}, Version: cosignVersion})
	if err != nil {
		b.Fatal(err)
	}
	cosign := filepath.Join(bin, "cosign")
	lite, err := tools.BuildCLI()
	if err != nil {
		b.Fatal(err)
	}
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
	reg := startCountingRegistry(b)
	runs := envInt(b, "BENCH_VERIFY_RUNS", 10)

	// The floor: each binary starting and doing nothing.
	var floorFull, floorLite, floorDaemon []measured
	for range runs {
		for _, x := range []struct {
			bin string
			out *[]measured
		}{{tools.NRICsig, &floorFull}, {lite, &floorLite}, {tools.NRICsigd, &floorDaemon}} {
			m, err := timed(nil, x.bin, "version")
			if err != nil {
				b.Fatal(err)
			}
			*x.out = append(*x.out, m)
		}
	}
	f := floorResult{runs: runs}
	f.fullWall, f.fullPeak = medians(floorFull)
	f.liteWall, f.litePeak = medians(floorLite)
	f.daemonWall, f.daemonPeak = medians(floorDaemon)
	table.setFloor(f)

	for _, tc := range []verifyCase{{"legacy", 1}, {"legacy", 100}, {"bundle", 1}} {
		b.Run(fmt.Sprintf("%s/%dsig", tc.format, tc.sigs), func(b *testing.B) {
			img, err := testbed.BusyboxImage(tools.Busybox, fmt.Sprintf("verify-%s-%d", tc.format, tc.sigs))
			if err != nil {
				b.Fatal(err)
			}
			repo := fmt.Sprintf("verify/%s-%d", tc.format, tc.sigs)
			digest, err := reg.push(repo+":v1", img)
			if err != nil {
				b.Fatal(err)
			}
			tag := reg.host + "/" + repo + ":v1"
			pub := prefix + ".pub"
			if tc.sigs == 1 {
				signArgs := []string{"sign", "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--yes", "--key", prefix + ".key"}
				if tc.format == "legacy" {
					signArgs = append(signArgs, "--new-bundle-format=false")
				}
				if _, err := timed(env, cosign, append(signArgs, reg.host+"/"+repo+"@"+digest)...); err != nil {
					b.Fatal(err)
				}
			} else if pub, err = signManyLegacy(reg.host+"/"+repo+"@"+digest, tc.sigs); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				var full, ours, theirs []measured
				for range runs {
					for _, x := range []struct {
						env  []string
						bin  string
						args []string
						out  *[]measured
					}{
						{nil, tools.NRICsig, []string{"verify", "--key", pub, tag}, &full},
						{nil, lite, []string{"verify", "--key", pub, tag}, &ours},
						{env, cosign, []string{"verify", "--insecure-ignore-tlog=true", "--allow-http-registry", "--key", pub, tag}, &theirs},
					} {
						mark := reg.mark()
						m, err := timed(x.env, x.bin, x.args...)
						if err != nil {
							b.Fatal(err)
						}
						m.requests = reg.mark() - mark
						*x.out = append(*x.out, m)
					}
				}
				v := verifyResult{format: tc.format, sigs: tc.sigs, runs: runs}
				v.fullWall, v.fullPeak = medians(full)
				v.oursWall, v.oursPeak = medians(ours)
				v.cosWall, v.cosPeak = medians(theirs)
				v.fullReqs, v.oursReqs, v.cosReqs = full[0].requests, ours[0].requests, theirs[0].requests
				table.addVerify(v)
				progress("verify %s/%d: nri-csig %s %s MiB, nri-csig-cli %s %s MiB, cosign %s %s MiB", tc.format, tc.sigs,
					v.fullWall.Round(time.Millisecond), testbed.MiB(v.fullPeak), v.oursWall.Round(time.Millisecond), testbed.MiB(v.oursPeak),
					v.cosWall.Round(time.Millisecond), testbed.MiB(v.cosPeak))
				b.ReportMetric(float64(v.oursWall)/float64(v.cosWall), "wall-nri-csig-cli/cosign")
				b.ReportMetric(float64(v.oursPeak)/float64(v.cosPeak), "peak-rss-nri-csig-cli/cosign")
				b.ReportMetric(float64(v.fullWall)/float64(v.cosWall), "wall-nri-csig/cosign")
				b.ReportMetric(float64(v.fullPeak)/float64(v.cosPeak), "peak-rss-nri-csig/cosign")
			}
		})
	}
}

// countingRegistry serves go-containerregistry's registry (referrers API
// on) on loopback and counts the requests it answers.
type countingRegistry struct {
	host string
	n    atomic.Int64
}

func startCountingRegistry(b *testing.B) *countingRegistry {
	c := &countingRegistry{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		reg.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	c.host = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *countingRegistry) mark() int { return int(c.n.Load()) }

func (c *countingRegistry) push(repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(c.host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

// signManyLegacy attaches n legacy signatures to digestRef with one new key
// (pkg/sign, each over its own payload: annotation n=i) and returns the
// public key file.
func signManyLegacy(digestRef string, n int) (string, error) {
	priv, pub := filepath.Join(work, "many.key"), filepath.Join(work, "many.pub")
	if _, err := os.Stat(priv); err != nil {
		if _, err := cli("generate-key", "--output-key-prefix", filepath.Join(work, "many")); err != nil {
			return "", err
		}
	}
	signer, err := keyref.Open(context.Background(), priv, keyref.Options{})
	if err != nil {
		return "", err
	}
	d, err := name.NewDigest(digestRef, name.Insecure)
	if err != nil {
		return "", err
	}
	for i := range n {
		sig, err := sign.Digest(context.Background(), signer, d, map[string]string{"n": strconv.Itoa(i)})
		if err != nil {
			return "", err
		}
		if err := sign.Attach(context.Background(), sig); err != nil {
			return "", err
		}
	}
	return pub, nil
}

// measured is one command run.
type measured struct {
	wall     time.Duration
	peak     int64 // bytes
	requests int   // to the registry, when counted
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
