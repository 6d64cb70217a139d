package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/regtest"
)

// BenchmarkManifestThroughHosts is one signature-tag read as discovery
// does it (Repo, then Manifest) for a registry reached directly and for one
// whose hosts.toml puts a mirror first: what hosts.toml costs per read once
// it is cached (no new transport, handshake or file read per call).
func BenchmarkManifestThroughHosts(b *testing.B) {
	ca := newCA(b)
	reg, digest := testRegistry(b, ca, regtest.Options{}, true)
	root := b.TempDir()
	dir := strings.Replace(reg.Host, ":", "_", 1) + "_"
	writeHosts(b, root, dir, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.crt\"\n", reg.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	writeHosts(b, root, "registry.invalid", fmt.Sprintf("server = \"https://registry.invalid\"\n[host.\"https://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n", reg.Host),
		map[string][]byte{"ca.crt": ca.CertPEM})
	for _, tc := range []struct{ name, repo string }{{"direct", reg.Host + "/app"}, {"mirror", "registry.invalid/app"}} {
		b.Run(tc.name, func(b *testing.B) {
			c := New(Options{ConfigPath: root})
			repo, _ := name.NewRepository(tc.repo)
			b.ReportAllocs()
			for b.Loop() {
				r, err := c.Repo(b.Context(), repo, false)
				if err != nil {
					b.Fatal(err)
				}
				if m, err := r.Manifest(b.Context(), "1", ImageMediaTypes, MaxManifestSize); err != nil || m.Digest != digest {
					b.Fatal(m, err)
				}
			}
		})
	}
}
