package daemon

import (
	"log/slog"

	"github.com/nri-csig/nri-csig/pkg/credprovider"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

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
