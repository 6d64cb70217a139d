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
