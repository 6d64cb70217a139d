package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// legacyManifest returns a legacy signature manifest with one signature of
// digest by s, the way Registry.Fetch returns it.
func legacyManifest(b testing.TB, s *testSigner, digest string) signature.Manifest {
	p, _ := signature.NewPayload(digest, "reg/app", nil)
	payload, _ := p.Marshal()
	sum := sha256.Sum256(payload)
	sig, err := s.SignDigest(context.Background(), sum[:])
	if err != nil {
		b.Fatal(err)
	}
	d := signature.DigestOf(payload)
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "config": map[string]any{},
		"layers": []any{map[string]any{"mediaType": signature.SimpleSigningMediaType, "digest": d, "size": len(payload),
			"annotations": map[string]string{signature.SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}}},
	})
	return signature.Manifest{Source: "bench", Raw: raw, Blobs: map[string][]byte{d: payload}}
}

// BenchmarkVerify measures in-process verification of one signature
// (parse manifest, check digest, verify, parse payload); signatures/s is
// reported as sigs/s.
func BenchmarkVerify(b *testing.B) {
	digest := "sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"
	for _, s := range []*testSigner{newRSA(b, "rsa-a"), newECDSA(b, "ecdsa-p256")} {
		b.Run(s.name, func(b *testing.B) {
			ms := []signature.Manifest{legacyManifest(b, s, digest)}
			keys := []Key{s.Key()}
			b.ReportAllocs()
			for b.Loop() {
				if res := Verify(digest, ms, keys); !res.OK() {
					b.Fatal(res.Err())
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}
