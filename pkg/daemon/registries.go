package daemon

import (
	"log/slog"
	"strings"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// newRegistryClient returns the daemon's one registry client: the node's
// hosts.toml tree (registries.configPath) and its credential chain, which
// it logs (names and paths only, never a credential).
func newRegistryClient(node *nodeconfig.Config, log *slog.Logger) (*registry.Client, error) {
	sources, err := CredentialSources(node, log)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	log.Info("registries", "config_path", node.Registries.ConfigPath, "credential_sources", strings.Join(names, "; "))
	return registry.New(registry.Options{
		HTTPHosts:  node.Signatures.InsecureRegistries,
		ConfigPath: node.Registries.ConfigPath,
		Keychain:   registry.Chain(sources...),
	}), nil
}

// CredentialSources are the node's credential sources (the daemon's, and
// the CLI's with --node-config), asked in this order
// (the first with credentials for a registry gives them): the Docker config
// file of registries.dockerConfig, the kubelet credential providers, then
// the default keychain.
//
// Loading the credential provider config can fail (a missing plugin, a
// malformed file): then there are no sources, and the daemon refuses to
// start rather than read registries with fewer credentials than the node's.
func CredentialSources(node *nodeconfig.Config, log *slog.Logger) ([]registry.NamedKeychain, error) {
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
