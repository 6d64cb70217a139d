package signature

import "testing"

// FuzzParseIndex feeds arbitrary referrers answers (an OCI image index from
// a registry anyone can push to) to ParseIndex.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + testDigest + `","size":512,"artifactType":"` + BundleMediaType + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseIndex(b)
		if err != nil {
			return
		}
		if x.SchemaVersion != 2 || len(x.Manifests) > MaxReferrers {
			t.Fatalf("accepted schemaVersion %d with %d referrers", x.SchemaVersion, len(x.Manifests))
		}
		for _, d := range x.Manifests {
			if ValidateDigest(d.Digest) != nil {
				t.Fatalf("accepted referrer digest %q", d.Digest)
			}
		}
	})
}
