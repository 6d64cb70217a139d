package daemon

import (
	"testing"

	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// An image known only by ID has no repository: no registry is asked for its
// signatures (that was a DNS look-up of local.invalid); a signature
// directory still is.
func TestNoRegistryLookupWithoutRepository(t *testing.T) {
	byID := imagestore.Candidate{Digest: "sha256:" + "1234567890123456789012345678901234567890123456789012345678901234"}
	pulled := imagestore.Candidate{Digest: byID.Digest, Repositories: []string{"registry.example/app"}}
	for _, tc := range []struct {
		name string
		dir  string
		c    imagestore.Candidate
		want bool
	}{
		{"by ID, registry only", "", byID, false},
		{"by ID, signature directory", "/var/lib/sigs", byID, true},
		{"pulled from a repository", "", pulled, true},
	} {
		node := nodeconfig.Default()
		node.Signatures.Dir = tc.dir
		d := &daemon{node: node}
		if got := d.fetchable(tc.c); got != tc.want {
			t.Errorf("%s: fetchable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
