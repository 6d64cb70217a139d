package verify

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/nettest"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// faultyRegistry serves go-containerregistry's registry (referrers API on)
// on loopback, except where fault answers first (returns true), and counts
// the requests that reached it.
func faultyRegistry(t *testing.T, fault func(w http.ResponseWriter, r *http.Request) bool) (string, *atomic.Int32) {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	n := &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if fault != nil && fault(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host, n
}

type partials struct {
	errs []error
}

func (p *partials) hook(_ name.Digest, err error) { p.errs = append(p.errs, err) }

// TestPartialDiscoveryKeepsWhatVerified: one failing part never discards the
// valid cosign .sig already read (issue 10, item 4), and the failure is
// reported to the hook.
func TestPartialDiscoveryKeepsWhatVerified(t *testing.T) {
	// The faults start once the image is signed: brokenBlob is the layer of
	// the referrer, set after the referrer is written.
	var brokenBlob string
	cases := map[string]func(w http.ResponseWriter, r *http.Request) bool{
		"referrers API 500": func(w http.ResponseWriter, r *http.Request) bool {
			if brokenBlob != "" && strings.Contains(r.URL.Path, "/referrers/") {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		},
		"referrer with a missing layer blob": func(w http.ResponseWriter, r *http.Request) bool {
			if brokenBlob != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+brokenBlob) {
				http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
				return true
			}
			return false
		},
		"referrer manifest 500": func(w http.ResponseWriter, r *http.Request) bool {
			if brokenBlob != "" && strings.Contains(r.URL.Path, "/manifests/sha256:") {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		},
		"referrers answer over 1 MiB": func(w http.ResponseWriter, r *http.Request) bool {
			if brokenBlob != "" && strings.Contains(r.URL.Path, "/referrers/") {
				w.Header().Set("Content-Type", string(types.OCIImageIndex))
				w.Write([]byte(`{"schemaVersion":2,"manifests":[],"pad":"` + strings.Repeat("x", signature.MaxManifestSize) + `"}`))
				return true
			}
			return false
		},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			brokenBlob = ""
			host, _ := faultyRegistry(t, fault)
			image := pushRandom(t, host, "app")
			good, other := newRSA(t, "rsa-a"), newECDSA(t, "ec")
			signLegacy(t, good, image)
			bundle := makeBundle(t, other, image.DigestStr())
			attachBundle(t, image, types.DockerManifestSchema2, 100, bundle)
			brokenBlob = signature.DigestOf(bundle)

			p := &partials{}
			ms, err := NewRegistry(WithPartialHook(p.hook)).Fetch(t.Context(), image)
			if err != nil {
				t.Fatalf("Fetch = %v; want the .sig kept", err)
			}
			res := Verify(image.DigestStr(), ms, []Key{good.Key()})
			if !res.OK() {
				t.Fatalf("Verify = %+v (%v); want the valid .sig verified", res, res.Err())
			}
			if len(p.errs) != 1 {
				t.Fatalf("partial hook called %d times; want once", len(p.errs))
			}
		})
	}
}

// TestDiscoveryUnavailable: when nothing at all could be read and a part
// failed, Fetch says so (ErrUnavailable) instead of "no signatures".
func TestDiscoveryUnavailable(t *testing.T) {
	host, _ := faultyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/referrers/") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}
		return false
	})
	image := pushRandom(t, host, "app") // no .sig
	if _, err := NewRegistry().Fetch(t.Context(), image); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Fetch(no .sig, referrers 500) = %v; want ErrUnavailable", err)
	}
}

// TestOversizedReferrersScopedToImage: an oversized referrers answer is
// refused for that image with a clear reason, not read whole.
func TestOversizedReferrersScopedToImage(t *testing.T) {
	host, _ := faultyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/referrers/") {
			w.Header().Set("Content-Type", string(types.OCIImageIndex))
			w.Header().Set("Content-Length", "104857600")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 1<<20))
			return true
		}
		return false
	})
	image := pushRandom(t, host, "app")
	ms, err := NewRegistry().Fetch(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	res := Verify(image.DigestStr(), ms, []Key{newRSA(t, "rsa-a").Key()})
	if err := res.Err(); res.OK() || !errors.Is(err, signature.ErrMalformed) || !errors.Is(ms[0].Err, registry.ErrTooLarge) ||
		!strings.Contains(err.Error(), "104857600 bytes") || !strings.Contains(err.Error(), "referrers of "+image.String()) {
		t.Fatalf("Verify(100 MiB referrers answer) = %v; want a size refusal naming the image", err)
	}
}

// TestDiscoveryRequests: one discovery needs one request per document, with
// identical signature payloads downloaded once.
func TestDiscoveryRequests(t *testing.T) {
	host, n := faultyRegistry(t, nil)
	image := pushRandom(t, host, "app")
	for range 5 {
		signLegacy(t, newECDSA(t, "ec"), image) // 5 signers, one payload
	}
	reg := NewRegistry()
	if _, err := reg.Fetch(t.Context(), image); err != nil { // handshake
		t.Fatal(err)
	}
	before := n.Load()
	ms, err := reg.Fetch(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	// .sig manifest, its one payload blob, the referrers answer.
	if got := n.Load() - before; got != 3 {
		t.Errorf("Fetch made %d requests; want 3 (.sig, one shared payload, referrers)", got)
	}
	if m, _ := signature.ParseManifest(ms[0].Raw); len(m.Layers) != 5 || len(ms[0].Blobs) != 1 {
		t.Errorf(".sig: %d layers, %d blobs; want 5 layers sharing 1 blob", len(m.Layers), len(ms[0].Blobs))
	}
}

// TestSilentRegistryIsUnavailable: a registry that accepts connections and
// never answers ends the discovery with ErrUnavailable, by the client's own
// timeouts (the caller's context has no deadline).
func TestSilentRegistryIsUnavailable(t *testing.T) {
	host := nettest.SilentListener(t)
	image, _ := name.NewDigest(host + "/app@sha256:" + strings.Repeat("ab", 32))
	c := registry.New(registry.Options{DialTimeout: 200 * time.Millisecond, ResponseTimeout: 200 * time.Millisecond, CallTimeout: time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := NewRegistry(WithClient(c)).Fetch(context.Background(), image)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Fetch(silent registry) = %v; want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Fetch(silent registry) hung")
	}
}

// A digest with no repository is never looked up in a registry: the source
// answers nothing at once instead of resolving local.invalid.
func TestNoRepositoryNotFetched(t *testing.T) {
	r := NewRegistry()
	ref, err := name.NewDigest(NoRepositoryHost+"/unknown@sha256:"+strings.Repeat("a", 64), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := r.Fetch(context.Background(), ref)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Fetch of a repository-less digest = %v, %v; want nothing and no error", ms, err)
	}
}
