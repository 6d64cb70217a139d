package bundleoci

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/bundletest"
	internalregistry "github.com/nri-csig/nri-csig/internal/registry"
)

// testRegistry serves an in-memory OCI registry on 127.0.0.1 and returns its host:port.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPushPullBundle(t *testing.T) {
	host := testRegistry(t)
	ref := host + "/security/csig-bundle:prod"
	data := bundletest.BundleText(t, "7", true)
	sig := []byte(`{"apiVersion":"x"}`) // PushBundle carries the signature as is
	digest, err := PushBundle(t.Context(), ref, data, sig)
	if err != nil {
		t.Fatal(err)
	}
	gotData, gotSig, gotDigest, err := PullBundle(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotData) != string(data) || string(gotSig) != string(sig) || gotDigest != digest {
		t.Errorf("PullBundle = %d bytes, sig %q, %s; want what was pushed (%s)", len(gotData), gotSig, gotDigest, digest)
	}

	// Unsigned: no signature layer.
	if _, err := PushBundle(t.Context(), ref, data, nil); err != nil {
		t.Fatal(err)
	}
	if _, gotSig, _, err = PullBundle(t.Context(), ref); err != nil || gotSig != nil {
		t.Errorf("PullBundle(unsigned) sig = %q, %v; want nil", gotSig, err)
	}

	if _, err := PushBundle(t.Context(), ref, []byte("kind: nonsense\n"), nil); err == nil || !strings.Contains(err.Error(), "refusing to push an invalid bundle") {
		t.Errorf("PushBundle(invalid) = %v", err)
	}

	// Something else at the reference is not taken for a bundle.
	img, _ := random.Image(100, 1)
	other, _ := name.ParseReference(host + "/security/app:1")
	if err := remote.Write(other, img); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := PullBundle(t.Context(), other.String()); err == nil || !strings.Contains(err.Error(), "is not an nri-csig policy bundle") {
		t.Errorf("PullBundle(an image) = %v", err)
	}
	if _, _, _, err := PullBundle(t.Context(), "UPPER/case:tag"); err == nil || !strings.Contains(err.Error(), "bundle reference") {
		t.Errorf("PullBundle(bad ref) = %v", err)
	}
}

// TestPullBundleBounded: a registry answering a bundle pull with 100 MiB is
// refused as it is read (the manifest cap), not after.
func TestPullBundleBounded(t *testing.T) {
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
		chunk := make([]byte, 64<<10)
		for n := 0; n < 100<<20; n += len(chunk) {
			m, err := w.Write(chunk)
			written.Add(int64(m))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	_, _, _, err := PullBundle(t.Context(), strings.TrimPrefix(srv.URL, "http://")+"/security/csig-bundle:prod")
	if !errors.Is(err, internalregistry.ErrTooLarge) {
		t.Fatalf("PullBundle(100 MiB manifest) = %v; want ErrTooLarge", err)
	}
	srv.Close()
	if w := written.Load(); w > 32<<20 {
		t.Errorf("the registry wrote %d bytes before the pull hung up", w)
	}
}
