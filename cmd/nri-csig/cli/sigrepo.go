//go:build !nodeonly

package cli

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// cosignRepositoryEnv is cosign's variable for the repository that holds
// signatures instead of the image's own (pkg/oci/remote RepoOverrideEnvKey).
const cosignRepositoryEnv = "COSIGN_REPOSITORY"

// signatureRepoFlag is --signature-repository of sign and verify: where the
// signatures of the image are written or read instead of the image's
// repository, with cosign's COSIGN_REPOSITORY as the default.
type signatureRepoFlag struct{ value string }

const signatureRepoHelp = `
Signature repository (--signature-repository REPO, or $COSIGN_REPOSITORY when the
flag is absent): the signatures are stored in REPO (registry.example.com/team/signatures)
instead of the image's own repository, under the same tag sha256-<hex>.sig (and, for
Sigstore bundles, the same referrers), keyed by the image's digest: cosign's
COSIGN_REPOSITORY semantics, so that cosign and nri-csig agree on where signatures
are. REPO must name its registry host and no tag or digest.
`

func (f *signatureRepoFlag) addFlags(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&f.value, "signature-repository", "",
		what+" the signatures in this repository instead of the image's (default $"+cosignRepositoryEnv+")")
}

// repository returns the repository the flag (or, when the flag is absent,
// $COSIGN_REPOSITORY) names, and ok false when neither is set.
func (f *signatureRepoFlag) repository(cmd *cobra.Command) (repo name.Repository, ok bool, err error) {
	v, from := f.value, "--signature-repository"
	if !cmd.Flags().Changed("signature-repository") {
		v, from = os.Getenv(cosignRepositoryEnv), "$"+cosignRepositoryEnv
	}
	if v == "" {
		if cmd.Flags().Changed("signature-repository") {
			return name.Repository{}, false, usageError(fmt.Errorf("--signature-repository is empty; name a repository or leave the flag out"))
		}
		return name.Repository{}, false, nil
	}
	if err := check.Repository(v); err != nil {
		return name.Repository{}, false, usageError(fmt.Errorf("%s: %w", from, err))
	}
	repo, err = name.NewRepository(v)
	if err != nil {
		return name.Repository{}, false, usageError(fmt.Errorf("%s: %w", from, err))
	}
	return repo, true, nil
}
