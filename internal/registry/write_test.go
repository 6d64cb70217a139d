package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/regtest"
)

// Writes (sign, bundle push) go to the registry itself, never to a mirror,
// even one hosts.toml gives the push capability.
func TestWritesSkipMirrors(t *testing.T) {
	ca := newCA(t)
	mirror, _ := testRegistry(t, ca, regtest.Options{}, false)
	upstream, _ := testRegistry(t, ca, regtest.Options{}, false)
	root := t.TempDir()
	writeHosts(t, root, hostDir(upstream.Host), fmt.Sprintf(`server = "https://%s"
ca = "ca.crt"
[host."https://%s"]
  capabilities = ["pull", "resolve", "push"]
  ca = "ca.crt"
`, upstream.Host, mirror.Host), map[string][]byte{"ca.crt": ca.CertPEM})
	c := New(Options{ConfigPath: root, Keychain: Chain()})
	repo, _ := name.NewRepository(upstream.Host + "/app")
	r, err := c.Repo(t.Context(), repo, true)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(64, 1)
	if err := remote.Write(repo.Tag("signed"), img, r.RemoteOptions(t.Context())...); err != nil {
		t.Fatalf("write = %v", err)
	}
	for _, q := range mirror.Requests() {
		if !strings.HasPrefix(q, "GET ") && !strings.HasPrefix(q, "HEAD ") {
			t.Errorf("the mirror got a write: %s", q)
		}
	}
	if got := strings.Join(upstream.Requests(), "\n"); !strings.Contains(got, "PUT /v2/app/manifests/signed") {
		t.Errorf("registry got %v; want the manifest written there", got)
	}
	if len(mirror.Requests()) != 0 {
		t.Errorf("the mirror was asked %v; a write never opens a mirror", mirror.Requests())
	}
}
