package signature

import (
	"encoding/base64"
	"os"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The fuzz targets check that the parsers never panic and that whatever they
// accept satisfies the invariants verification relies on.

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte(cosignPayload))
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"https://sigstore.dev/cosign/sign/v1"},"optional":{"k":"v"}}`))
	f.Add([]byte(`{"critical":{},"critical":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload(b)
		if err != nil {
			return
		}
		if ValidateDigest(p.Digest()) != nil {
			t.Fatalf("accepted payload with digest %q", p.Digest())
		}
		if p.Critical.Type != CosignType && p.Critical.Type != CosignSignPredicateType {
			t.Fatalf("accepted payload with type %q", p.Critical.Type)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + testDigest + `","size":2},"layers":[{"mediaType":"` + SimpleSigningMediaType + `","digest":"` + testDigest + `","size":10,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if len(m.Layers) > MaxLayers {
			t.Fatalf("accepted %d layers", len(m.Layers))
		}
		for _, l := range m.Layers {
			if ValidateDigest(l.Digest) != nil {
				t.Fatalf("accepted layer digest %q", l.Digest)
			}
		}
	})
}

func FuzzParseSigstoreBundle(f *testing.F) {
	f.Add([]byte(testBundle))
	if b, err := os.ReadFile("testdata/cosign-v3.1.3-bundle.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bu, err := ParseSigstoreBundle(b)
		if err != nil {
			return
		}
		if bu.DSSEEnvelope == nil || len(bu.DSSEEnvelope.Signatures) == 0 {
			t.Fatal("accepted a bundle without DSSE signatures")
		}
		if s, err := ParseStatement(bu.DSSEEnvelope.Payload); err == nil && len(s.Subject) == 0 {
			t.Fatal("accepted a statement without subjects")
		}
	})
}

func FuzzDecodeBase64(f *testing.F) {
	f.Add("MEUCIQ==")
	f.Fuzz(func(t *testing.T, s string) {
		if b, err := DecodeBase64(s); err == nil && len(b) == 0 {
			t.Fatalf("DecodeBase64(%q) accepted empty output", s)
		}
	})
}
