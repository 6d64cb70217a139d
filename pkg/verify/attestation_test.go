package verify

import (
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// A cosign v3 bundle signed by the witness's own key, for the image, whose
// in-toto statement is an attestation (SLSA provenance, an SBOM) is never a
// signature: the key verifies the envelope, the predicate type refuses it.
func TestKeySignedAttestationNeverCounts(t *testing.T) {
	host := testRegistry(t)
	s := newECDSA(t, "ec")
	for _, pt := range []string{
		"https://slsa.dev/provenance/v1",
		"https://spdx.dev/Document",
		"https://cosign.sigstore.dev/attestation/v1",
	} {
		t.Run(pt, func(t *testing.T) {
			image := pushRandom(t, host, "app")
			attachBundle(t, image, types.DockerManifestSchema2, 100, makeBundleOf(t, s, image.DigestStr(), pt))
			res := Verify(image.DigestStr(), fetch(t, image), []Key{s.Key()})
			if res.OK() || len(res.Verified) != 0 {
				t.Fatalf("Verify(attestation %s) = %+v; want not verified", pt, res)
			}
			if !errors.Is(res.Err(), signature.ErrWrongType) {
				t.Fatalf("Verify(attestation %s) error = %v; want ErrWrongType (an attestation, not a signature)", pt, res.Err())
			}
		})
	}
	// The same key and image with cosign's signature predicate verifies:
	// what refused the attestations is their predicate type alone.
	image := pushRandom(t, host, "signed")
	attachBundle(t, image, types.DockerManifestSchema2, 100, makeBundle(t, s, image.DigestStr()))
	if res := Verify(image.DigestStr(), fetch(t, image), []Key{s.Key()}); !res.OK() {
		t.Fatalf("Verify(signature bundle) = %+v, %v; want verified", res, res.Err())
	}
}
