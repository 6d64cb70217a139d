package daemon

import (
	"log/slog"
	"strings"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/regcreds"
)

// newRegistryClient returns the daemon's one registry client: the node's
// hosts.toml tree (registries.configPath) and its credential chain, which
// it logs (names and paths only, never a credential).
func newRegistryClient(node *nodeconfig.Config, log *slog.Logger) (*registry.Client, error) {
	sources, err := regcreds.Sources(node, log) // the CLI's --node-config builds the same
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
