package verify

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// TestCosignBundleFixture verifies a bundle the real cosign v3.1.3 wrote
// (see pkg/signature/testdata/README.md), offline and without cosign.
func TestCosignBundleFixture(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("../signature/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bundle := read("cosign-v3.1.3-bundle.json")
	digest := strings.TrimSpace(string(read("cosign-v3.1.3-bundle.digest")))
	pub, err := keys.ParsePublicKeyPEM(read("cosign-v3.1.3-ecdsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	d := signature.DigestOf(bundle)
	raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": map[string]any{}, "layers": []any{
		map[string]any{"mediaType": signature.BundleMediaType, "digest": d, "size": len(bundle)}}})
	ms := []signature.Manifest{{Source: "fixture", Raw: raw, Blobs: map[string][]byte{d: bundle}}}

	res := Verify(digest, ms, []Key{{Name: "cosign.pub", Public: pub}})
	if !res.OK() || res.Verified[0].Format != FormatBundle {
		t.Fatalf("Verify(cosign bundle) = %+v, %v; want verified", res, res.Err())
	}
	other := "sha256:" + strings.Repeat("0", 64)
	if res := Verify(other, ms, []Key{{Name: "cosign.pub", Public: pub}}); res.OK() {
		t.Fatalf("Verify(cosign bundle, another digest) verified")
	}
}
