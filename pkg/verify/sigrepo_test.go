package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/sign"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// Signatures stored in another repository the way cosign stores them with
// COSIGN_REPOSITORY (the legacy tag and the bundle referrer, keyed by the
// image digest) are found when that repository is searched too, with and
// without the referrers API (the sha256-<hex> tag fallback).
func TestStoreFindsSignaturesInASignatureRepository(t *testing.T) {
	for _, referrersAPI := range []bool{false, true} {
		host := testRegistry(t, ggcrregistry.WithReferrersSupport(referrersAPI))
		img := pushRandom(t, host, "app")
		sigs, err := name.NewRepository(host + "/team/signatures")
		if err != nil {
			t.Fatal(err)
		}
		legacy, bundled := newRSA(t, "legacy"), newECDSA(t, "bundled")
		sig, err := sign.Digest(context.Background(), legacy, img, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sign.AttachTo(context.Background(), sig, sigs); err != nil {
			t.Fatal(err)
		}
		attachBundle(t, sigs.Digest(img.DigestStr()), types.OCIManifestSchema1, 100, makeBundle(t, bundled, img.DigestStr()))
		lk, bk := fpKey(t, legacy), fpKey(t, bundled)

		st := NewStore(nil, NewRegistry())
		st.SetKeys([]Key{lk, bk})
		d := img.DigestStr()
		if err := st.Prefetch(context.Background(), d, []string{img.Context().Name()}); err != nil {
			t.Fatal(err)
		}
		if st.Verified(d, lk.Name) || st.Verified(d, bk.Name) || st.Status(d) != ErrNoSignatures.Error() {
			t.Fatalf("referrers API %v: found signatures in the image's repository only: %s", referrersAPI, st.Status(d))
		}
		if err := st.Prefetch(context.Background(), d, []string{img.Context().Name(), sigs.Name()}); err != nil {
			t.Fatal(err)
		}
		if !st.Verified(d, lk.Name) || !st.Verified(d, bk.Name) {
			t.Fatalf("referrers API %v: with %s searched: legacy %v, bundle %v; want both verified (%s)",
				referrersAPI, sigs, st.Verified(d, lk.Name), st.Verified(d, bk.Name), st.Status(d))
		}
	}
}

// A signature repository that does not answer does not hide what the
// image's repository gave; the failure is returned.
func TestStoreSignatureRepositoryDown(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	ci := newRSA(t, "ci")
	signLegacy(t, ci, img)
	k := fpKey(t, ci)
	st := NewStore(nil, NewRegistry())
	st.SetKeys([]Key{k})
	d := img.DigestStr()
	err := st.Prefetch(context.Background(), d, []string{img.Context().Name(), "127.0.0.1:1/sigs"})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1/sigs") {
		t.Fatalf("Prefetch with the signature repository down = %v; want ErrUnavailable naming it", err)
	}
	if !st.Verified(d, k.Name) {
		t.Fatalf("the signature in the image's repository was not kept: %s", st.Status(d))
	}
	// Only the signature repository, down: nothing could be read, which is
	// not "not signed".
	d2 := pushRandom(t, host, "other").DigestStr()
	if err := st.Prefetch(context.Background(), d2, []string{host + "/other", "127.0.0.1:1/sigs"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Prefetch = %v; want ErrUnavailable", err)
	}
	if !st.Unreadable(d2) {
		t.Fatalf("status %q; want unreadable", st.Status(d2))
	}
}

// countingDir counts the look-ups of a signature directory.
type countingDir struct {
	*Dir
	calls int
}

func (c *countingDir) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	c.calls++
	return c.Dir.Fetch(ctx, image)
}

// A signature directory answers by digest alone: one discovery asks it once
// however many repositories (the image's, signature repositories) are
// searched, and its signatures are held once.
func TestDirAskedOncePerDiscovery(t *testing.T) {
	ss, _ := ecdsaKeys(t, 1)
	d := testDigest(7)
	dir := &countingDir{Dir: NewDir(t.TempDir())}
	ref, _ := name.NewDigest("reg.example/app@" + d)
	if err := dir.Put(ref, []signature.Manifest{legacyManifest(t, ss[0], d)}); err != nil {
		t.Fatal(err)
	}
	st := NewStore(nil, dir)
	k := fpKey(t, ss[0])
	st.SetKeys([]Key{k})
	if err := st.Prefetch(context.Background(), d, []string{"reg.example/app", "reg.example/team/sigs", "other.example/sigs"}); err != nil {
		t.Fatal(err)
	}
	if dir.calls != 1 {
		t.Errorf("the signature directory was asked %d times for one discovery; want 1", dir.calls)
	}
	st.mu.RLock()
	n := len(entryOf(st, d).checks)
	st.mu.RUnlock()
	if n != 1 || !st.Verified(d, k.Name) {
		t.Errorf("the store holds %d checks (verified %v); want the one signature once", n, st.Verified(d, k.Name))
	}
}
