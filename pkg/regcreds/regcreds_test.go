package regcreds

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

func mustSources(t *testing.T, node *nodeconfig.Config) []registry.NamedKeychain {
	t.Helper()
	s, err := Sources(node, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The explicit docker config file comes first, the default keychain last.
func TestCredentialSourcesOrder(t *testing.T) {
	node := nodeconfig.Default()
	if s := mustSources(t, node); len(s) != 1 || s[0].Name != registry.DefaultSource.Name {
		t.Fatalf("no dockerConfig: %v; want the default keychain only", s)
	}
	node.Registries.DockerConfig = "/etc/nri-csig/docker/config.json"
	s := mustSources(t, node)
	if len(s) != 2 || !strings.Contains(s[0].Name, "/etc/nri-csig/docker/config.json") || s[1].Name != registry.DefaultSource.Name {
		t.Fatalf("sources = %v; want the docker config file, then the default keychain", s)
	}
}
