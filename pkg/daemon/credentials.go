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
// This is the one place the chain is assembled: internal/registry's named
// chain of sources replaces the MultiKeychain here, with
// credentialProviders as its source after the Docker config file.
func registryKeychain(node *nodeconfig.Config, log *slog.Logger) (authn.Keychain, error) {
	k, err := credentialProviders(node, log)
	if err != nil || k == nil {
		return authn.DefaultKeychain, err
	}
	return authn.NewMultiKeychain(k, authn.DefaultKeychain), nil
}

// credentialProviders returns the kubelet credential providers the node
// config names (nil when it names none). Its String() names the providers
// and the config file, for errors. It reads the config and finds the
// plugins; it runs none.
func credentialProviders(node *nodeconfig.Config, log *slog.Logger) (*credprovider.Keychain, error) {
	cp := node.Registries.CredentialProviders
	if !cp.Configured() {
		return nil, nil
	}
	k, err := credprovider.New(cp.Config, cp.BinDir, credprovider.WithLogger(log))
	if err != nil {
		return nil, err
	}
	for _, s := range k.Skipped() {
		log.Warn("kubelet credential provider skipped", "provider", s)
	}
	return k, nil
}
