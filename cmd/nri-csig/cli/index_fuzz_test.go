//go:build !nodeonly

package cli

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// FuzzIndexChildren feeds arbitrary image index answers from a registry to
// indexChildren (nri-csig verify of a multi-platform image): it must never
// panic and returns at most maxPlatforms valid digests.
func FuzzIndexChildren(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"sha256:x"},{"platform":null}]}`))
	f.Add([]byte(`null`))
	repo, err := name.NewRepository("reg.example/app")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := indexChildren(raw, repo)
		if err != nil {
			return
		}
		if len(out) > maxPlatforms {
			t.Fatalf("%d platforms, bound %d", len(out), maxPlatforms)
		}
		for _, c := range out {
			if signature.ValidateDigest(c.digest.DigestStr()) != nil {
				t.Fatalf("invalid digest %q", c.digest.DigestStr())
			}
		}
	})
}
