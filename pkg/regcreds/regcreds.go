// Package regcreds names the node's registry credential sources, in the
// order they are asked: the daemon's, and the CLI's with --node-config. It
// is its own package so that the CLI reads registries as the node does
// without linking the daemon (containerd's client, NRI, gRPC, Prometheus).
package regcreds

import (
	"log/slog"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/credprovider"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// Sources are the node's credential sources, asked in this order (the
// first with credentials for a registry gives them): the Docker config file
// of registries.dockerConfig, the kubelet credential providers, then the
// default keychain.
//
// Loading the credential provider config can fail (a missing plugin, a
// malformed file): then there are no sources, and the daemon refuses to
// start rather than read registries with fewer credentials than the node's.
func Sources(node *nodeconfig.Config, log *slog.Logger) ([]registry.NamedKeychain, error) {
	var sources []registry.NamedKeychain
	if p := node.Registries.DockerConfig; p != "" {
		sources = append(sources, registry.DockerConfig(p))
	}
	kc, err := credentialProviders(node, log)
	if err != nil {
		return nil, err
	}
	if kc != nil {
		sources = append(sources, registry.NamedKeychain{Name: kc.String(), Keychain: kc})
	}
	return append(sources, registry.DefaultSource), nil
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
