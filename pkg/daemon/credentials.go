package daemon

import (
	"log/slog"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/nri-csig/nri-csig/pkg/credprovider"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// registryKeychain is where the daemon's registry client gets credentials:
// kubelet's credential provider plugins when the node config names them
// (registries.credentialProviders), then go-containerregistry's default
// keychain (the Docker config of the daemon's environment).
//
// This is the one place the chain is assembled; internal/registry's named
// chain (Docker config file, credential providers, default) replaces the
// MultiKeychain here when both are on one branch.
func registryKeychain(node *nodeconfig.Config, log *slog.Logger) (authn.Keychain, error) {
	cp := node.Registries.CredentialProviders
	if !cp.Configured() {
		return authn.DefaultKeychain, nil
	}
	k, err := credprovider.New(cp.Config, cp.BinDir, credprovider.WithLogger(log))
	if err != nil {
		return nil, err
	}
	for _, s := range k.Skipped() {
		log.Warn("kubelet credential provider skipped", "provider", s)
	}
	return authn.NewMultiKeychain(k, authn.DefaultKeychain), nil
}
