//go:build integration

package cosign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/nri-csig/nri-csig/pkg/sign"
)

// countingRegistry serves go-containerregistry's registry on loopback and
// records every request it answers, so a benchmark can say how many each
// verifier made.
type countingRegistry struct {
	host string
	mu   sync.Mutex
	log  []string
}

func startCountingRegistry(t testing.TB, referrersAPI bool) *countingRegistry {
	t.Helper()
	c := &countingRegistry{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrersAPI))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.log = append(c.log, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	c.host = u.Host
	return c
}

// since returns the requests made after mark and the new mark.
func (c *countingRegistry) since(mark int) ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log[mark:]...), len(c.log)
}

func (c *countingRegistry) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.log)
}

// measured is one run of a verifier as a fresh process.
type measured struct {
	wall     time.Duration
	maxRSS   int64 // KiB, the process's peak resident set (GNU time's %M)
	requests int
}

func runMeasured(t testing.TB, reg *countingRegistry, bin string, args ...string) measured {
	t.Helper()
	// GNU time reports the peak RSS of its child from wait4. Measuring the
	// child of this (large) test process directly would not do: Linux starts
	// a vforked child's peak at the parent's.
	rss := filepath.Join(t.TempDir(), "maxrss")
	mark := reg.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, timeBin, append([]string{"-f", "%M", "-o", rss, bin}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+homeDir, "COSIGN_YES=true", "TUF_ROOT="+filepath.Join(homeDir, "tuf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out.String())
	}
	reqs, _ := reg.since(mark)
	b, err := os.ReadFile(rss)
	if err != nil {
		t.Fatal(err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", timeBin, b, err)
	}
	return measured{wall: wall, maxRSS: kib, requests: len(reqs)}
}

// timeBin is GNU time, which measures a child's peak RSS.
const timeBin = "/usr/bin/time"

// memSigner is an in-memory ECDSA key for signing many times quickly.
type memSigner struct{ k *ecdsa.PrivateKey }

func (s memSigner) SignDigest(_ context.Context, d []byte) ([]byte, error) {
	return ecdsa.SignASN1(rand.Reader, s.k, d)
}

// signManyLegacy attaches n legacy signatures to digestRef with one key,
// each over its own payload (annotation n=i), and returns the public key file.
func signManyLegacy(t testing.TB, digestRef string, n int) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub := filepath.Join(t.TempDir(), "many.pub")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(digestRef)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sig, err := sign.Digest(context.Background(), memSigner{k}, d, map[string]string{"n": strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := sign.Attach(context.Background(), sig); err != nil {
			t.Fatal(err)
		}
	}
	return pub
}

// BenchmarkVerifyVsCosign runs "nri-csig verify --key" and "cosign verify
// --key" on the same signed image in the same loopback registry, each a
// fresh process per iteration (what an operator runs), and reports per run
// of each: the mean wall time, the mean peak RSS, the HTTP requests made to
// the registry, and the ratios nri-csig/cosign (targets: wall <= 0.4, peak
// memory <= 0.25, requests <= 1), and the floor: the wall time and peak RSS
// of "nri-csig version", the same binary starting and doing nothing.
//
// Formats: legacy (cosign's sha256-<hex>.sig tag, 1 and 100 signatures,
// each of the 100 over its own payload) and bundle (a Sigstore bundle
// attached as an OCI 1.1 referrer, with the registry's referrers API).
//
//	NRI_CSIG_CACHE=/work/main/.cache go test -tags integration -run '^$' -bench VerifyVsCosign -benchtime 10x ./integration/cosign
func BenchmarkVerifyVsCosign(b *testing.B) {
	for _, tc := range []struct {
		format string
		sigs   int
	}{{"legacy", 1}, {"legacy", 100}, {"bundle", 1}} {
		b.Run(fmt.Sprintf("%s/%dsig", tc.format, tc.sigs), func(b *testing.B) {
			reg := startCountingRegistry(b, tc.format == "bundle")
			tag, digestRef := pushImage(b, reg.host, "bench", randomImage(b))
			var pub string
			if tc.sigs == 1 {
				var priv string
				priv, pub = cosignKeyPair(b, "ecdsa")
				args := append(append([]string{}, cosignSignFlags...), "--key", priv)
				if tc.format == "legacy" {
					args = append(args, "--new-bundle-format=false")
				}
				if r := cosign(b, append(args, digestRef)...); r.code != 0 {
					b.Fatalf("cosign sign: %s", r.out)
				}
			} else {
				pub = signManyLegacy(b, digestRef, tc.sigs)
			}
			var ours, theirs, floor measured
			for b.Loop() {
				f := runMeasured(b, reg, csigBin, "version")
				o := runMeasured(b, reg, csigBin, "verify", "--key", pub, tag)
				c := runMeasured(b, reg, cosignBin, append(cosignVerifyFlags, "--key", pub, tag)...)
				floor.wall += f.wall
				floor.maxRSS += f.maxRSS
				ours.wall += o.wall
				theirs.wall += c.wall
				ours.maxRSS += o.maxRSS
				theirs.maxRSS += c.maxRSS
				ours.requests, theirs.requests = o.requests, c.requests
			}
			n := float64(b.N)
			b.ReportMetric(float64(ours.wall.Milliseconds())/n, "nri-csig-ms/op")
			b.ReportMetric(float64(theirs.wall.Milliseconds())/n, "cosign-ms/op")
			b.ReportMetric(float64(ours.wall)/float64(theirs.wall), "wall-nri-csig/cosign")
			b.ReportMetric(float64(ours.maxRSS)/n/1024, "nri-csig-peak-MiB")
			b.ReportMetric(float64(theirs.maxRSS)/n/1024, "cosign-peak-MiB")
			b.ReportMetric(float64(ours.maxRSS)/float64(theirs.maxRSS), "mem-nri-csig/cosign")
			// The floor: "nri-csig version", the same binary doing nothing.
			b.ReportMetric(float64(floor.wall.Milliseconds())/n, "floor-ms/op")
			b.ReportMetric(float64(floor.maxRSS)/n/1024, "floor-peak-MiB")
			b.ReportMetric(float64(ours.requests), "nri-csig-requests")
			b.ReportMetric(float64(theirs.requests), "cosign-requests")
		})
	}
}

// TestVerifyRequests prints, for one run of each verifier, the requests it
// made (what BenchmarkVerifyVsCosign counts), and holds nri-csig to at most
// as many as cosign.
func TestVerifyRequests(t *testing.T) {
	for _, format := range []string{"legacy", "bundle"} {
		t.Run(format, func(t *testing.T) {
			reg := startCountingRegistry(t, format == "bundle")
			tag, digestRef := pushImage(t, reg.host, "req", randomImage(t))
			priv, pub := cosignKeyPair(t, "ecdsa")
			args := append(append([]string{}, cosignSignFlags...), "--key", priv)
			if format == "legacy" {
				args = append(args, "--new-bundle-format=false")
			}
			if r := cosign(t, append(args, digestRef)...); r.code != 0 {
				t.Fatalf("cosign sign: %s", r.out)
			}
			mark := reg.mark()
			if r := csig(t, "verify", "--key", pub, tag); r.code != 0 {
				t.Fatalf("nri-csig verify: exit %d\n%s", r.code, r.out)
			}
			ours, mark := reg.since(mark)
			if r := cosign(t, append(cosignVerifyFlags, "--key", pub, tag)...); r.code != 0 {
				t.Fatalf("cosign verify: exit %d\n%s", r.code, r.out)
			}
			theirs, _ := reg.since(mark)
			t.Logf("nri-csig verify: %d requests\n  %v\ncosign verify: %d requests\n  %v", len(ours), ours, len(theirs), theirs)
			if len(ours) > len(theirs) {
				t.Errorf("nri-csig verify made %d requests, cosign %d; want at most as many", len(ours), len(theirs))
			}
		})
	}
}
