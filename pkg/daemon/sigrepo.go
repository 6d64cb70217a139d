package daemon

import (
	"fmt"
	"slices"
	"strings"
)

// Signature repositories (policy.Witness.SignatureRepository): every
// discovery searches the bundle's signature repositories for the node's
// cluster beside the image's own repositories. Signatures are verified by
// key, so what is found anywhere counts for every witness whose key made it.

// useSignatureRepositories puts repos in force for the discoveries to come.
func (d *daemon) useSignatureRepositories(repos []string) {
	if !slices.Equal(repos, d.fetch.signatureRepositories()) {
		d.log.Info("signature repositories in force, searched beside each image's own repository",
			"repositories", strings.Join(repos, ","))
	}
	d.fetch.setSignatureRepositories(repos)
}

// setSignatureRepositories sets the signature repositories every discovery
// from now on searches too.
func (p *prefetcher) setSignatureRepositories(repos []string) { p.sigRepos.Store(&repos) }

func (p *prefetcher) signatureRepositories() []string {
	if r := p.sigRepos.Load(); r != nil {
		return *r
	}
	return nil
}

// searchRepositories is where the signatures of an image with these
// repositories are looked up: its own, then the signature repositories, each
// once. An image without a repository (known by ID only) is looked up in no
// registry, signature repositories included.
func searchRepositories(own, sigRepos []string) []string {
	if len(own) == 0 || len(sigRepos) == 0 {
		return own
	}
	out := slices.Clone(own)
	for _, r := range sigRepos {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// maxReposNamed bounds the repositories a refusal names.
const maxReposNamed = 6

// searchedText says where a discovery looked, for "no signatures found".
func searchedText(repos []string) string {
	switch {
	case len(repos) == 0:
		return " (the image names no repository: only a signature directory could hold them)"
	case len(repos) > maxReposNamed:
		return fmt.Sprintf(" in %s and %d more", strings.Join(repos[:maxReposNamed], ", "), len(repos)-maxReposNamed)
	}
	return " in " + strings.Join(repos, ", ")
}
