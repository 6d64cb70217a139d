//go:build integration

package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// faultyRegistry is go-containerregistry's registry (referrers API on) on
// loopback, with one fault that can be switched on once the images are in.
type faultyRegistry struct {
	host  string
	fault atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	// served counts the bytes the fault handlers wrote.
	served atomic.Int64
}

func startFaultyRegistry(t *testing.T) *faultyRegistry {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	f := &faultyRegistry{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := f.fault.Load(); h != nil && (*h)(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	f.host = l.Addr().String()
	return f
}

func (f *faultyRegistry) set(h func(w http.ResponseWriter, r *http.Request) bool) { f.fault.Store(&h) }

// signedImage pushes a distinct busybox image as repo:1 to f, signs it with
// the ci witness key (a cosign .sig) and attaches a referrer carrying a
// Sigstore bundle layer. It returns the image and that layer's digest.
func signedImage(t *testing.T, f *faultyRegistry, repo string) (testbed.Image, string) {
	t.Helper()
	img, err := testbed.BusyboxImage(env.Tools.Busybox, repo)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(f.host + "/" + repo + ":1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	mustCLI(t, "sign", "--key", keyFile(ciKey, "key"), ref.String())

	// A referrer that anyone with push rights can write; its layer is made
	// unreadable by a fault below.
	content := []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`)
	layer := static.NewLayer(content, "application/vnd.dev.sigstore.bundle.v0.3+json")
	empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	if err := remote.WriteLayer(ref.Context(), empty); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(ref.Context(), layer); err != nil {
		t.Fatal(err)
	}
	ld, _ := layer.Digest()
	ed, _ := empty.Digest()
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
		"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
		"layers":  []any{map[string]any{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": ld.String(), "size": len(content)}},
		"subject": map[string]any{"mediaType": types.DockerManifestSchema2, "digest": d.String(), "size": 100},
	})
	if err := remote.Put(ref.Context().Digest(digestOf(m)), rawManifest{m}); err != nil {
		t.Fatal(err)
	}
	return testbed.Image{Ref: ref.String(), Digest: d.String()}, ld.String()
}

type rawManifest struct{ raw []byte }

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// partialCount reads nri_csig_signature_discovery_partial_total.
func partialCount(t *testing.T) float64 {
	t.Helper()
	u, err := daemon.MetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "nri_csig_signature_discovery_partial_total "); ok {
			var f float64
			fmt.Sscanf(v, "%g", &f)
			return f
		}
	}
	t.Fatal("the daemon does not export nri_csig_signature_discovery_partial_total")
	return 0
}

// A broken referrer beside a valid .sig, or a referrers API that answers
// 500: the signed image runs, and the partial discovery is logged and
// counted (issue 10, item 4).
func TestPartialDiscoveryKeepsValidSignature(t *testing.T) {
	for name, fault := range map[string]func(brokenBlob string) func(w http.ResponseWriter, r *http.Request) bool{
		"referrer with a missing layer blob": func(brokenBlob string) func(w http.ResponseWriter, r *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/blobs/"+brokenBlob) {
					http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}`, http.StatusNotFound)
					return true
				}
				return false
			}
		},
		"referrers API 500": func(string) func(w http.ResponseWriter, r *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/referrers/") {
					http.Error(w, "boom", http.StatusInternalServerError)
					return true
				}
				return false
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := startFaultyRegistry(t)
			img, brokenBlob := signedImage(t, f, "partial/"+strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), "API-", "api-"))
			f.set(fault(brokenBlob))
			before := partialCount(t)
			if _, err := env.Containerd.Pull(img.Ref); err != nil {
				t.Fatal(err)
			}
			mustRun(t, newPod(t, "signed"), "partial", img)
			if err := testbed.Poll(10*time.Second, func() error {
				if n := partialCount(t); n <= before {
					return fmt.Errorf("nri_csig_signature_discovery_partial_total = %v; want above %v", n, before)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(daemon.Log(), "signature discovery partial") {
				t.Error("no \"signature discovery partial\" log line")
			}
		})
	}
}

// TestHostileReferrersAnswerRSS: a registry that answers the referrers query
// of a signed image with 100 MiB (streamed, no Content-Length) leaves the
// daemon's RSS under 60 MiB (issue 10, item 5): the daemon stops reading at
// its 1 MiB cap. The image's valid .sig still counts.
func TestHostileReferrersAnswerRSS(t *testing.T) {
	const answer = 100 << 20
	f := startFaultyRegistry(t)
	img, _ := signedImage(t, f, "hostile/app")
	var done atomic.Bool
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		defer done.Store(true)
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"pad":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n := 0; n < answer; n += len(chunk) {
			m, err := w.Write(chunk)
			f.served.Add(int64(m))
			if err != nil {
				return true // the daemon hung up
			}
		}
		w.Write([]byte(`"}}`))
		return true
	})
	before, err := daemon.RSSBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Containerd.Pull(img.Ref); err != nil {
		t.Fatal(err)
	}
	// Sample the daemon's RSS while it discovers the image's signatures,
	// until the hostile answer is over and a create has been judged.
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, err := daemon.RSSBytes(); err == nil && rss > peak {
				peak = rss
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	mustRun(t, newPod(t, "signed"), "hostile-referrers", img)
	if err := testbed.Poll(30*time.Second, func() error {
		if !done.Load() {
			return fmt.Errorf("the referrers answer was not requested yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	t.Logf("daemon RSS: %.1f MiB before, peak %.1f MiB while discovering against a %d MiB referrers answer (the registry got %.1f MiB out before the daemon hung up)",
		float64(before)/(1<<20), float64(peak)/(1<<20), answer>>20, float64(f.served.Load())/(1<<20))
	if peak >= 60<<20 {
		t.Errorf("daemon peak RSS %.1f MiB; want under 60 MiB", float64(peak)/(1<<20))
	}
	if f.served.Load() >= answer {
		t.Errorf("the daemon read the whole %d MiB answer", answer>>20)
	}
}
