package policy

import "slices"

// MaxSignatureRepositories bounds the distinct signature repositories
// (Witness.SignatureRepository) one bundle may name. A node searches each
// for the signatures of every image, beside the image's own repository, so
// this bounds the registry requests one image costs whatever the bundle
// holds; a bundle naming more is refused with a message saying so.
const MaxSignatureRepositories = 8

// SignatureRepositories returns the distinct signature repositories of the
// witnesses that the enabled policies for cluster (in any namespace) name,
// in bundle order: where a node of that cluster looks for signatures beside
// each image's own repository. At most MaxSignatureRepositories. It walks
// the policies once: call it per bundle, not per decision.
func (b *Bundle) SignatureRepositories(cluster string) []string {
	var out []string
	for _, p := range b.Policies {
		if !p.Enabled || !slices.Contains(p.Clusters, cluster) && !slices.Contains(p.Clusters, Wildcard) {
			continue
		}
		for _, wn := range p.Witnesses {
			w := b.witnessByName[wn]
			if w == nil || w.SignatureRepository == "" || slices.Contains(out, w.SignatureRepository) {
				continue
			}
			out = append(out, w.SignatureRepository)
		}
	}
	return out
}
