package bundleoci

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// FuzzOCIManifest feeds arbitrary manifest answers from the bundle registry
// to go-containerregistry's parser, which pull reads them with before it
// checks the config media type and the layer sizes: it must never panic.
func FuzzOCIManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"` + BundleConfigMediaType +
		`","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"` + BundleMediaType +
		`","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}]}`))
	f.Add([]byte(`{"layers":[null]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return
		}
		for _, l := range m.Layers {
			_ = l.Size > policy.MaxBundleSize // what pull compares; must not panic on any value
		}
		v1.ParseIndexManifest(bytes.NewReader(raw))
	})
}
