//go:build !nodeonly

package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/regcreds"
)

// registryFlags are the registry options sign, verify and bundle push|pull
// share; the names and meanings are cosign's: one flag skips TLS
// verification, the other allows plain HTTP. --registry-config-path,
// --docker-config and --node-config reach registries the way a node does.
type registryFlags struct {
	allowInsecure bool
	allowHTTP     bool
	timeout       time.Duration
	configPath    string
	dockerConfig  string
	nodeConfig    string
}

// registryFlagsHelp explains, in a command's long help, where registry
// settings and credentials come from.
const registryFlagsHelp = `
Registries are reached as a node reaches them when asked: --registry-config-path DIR
reads containerd's hosts.toml tree (mirrors first, then the registry; CA files, client
certificates, skip_verify), and --node-config FILE takes registries.configPath,
registries.dockerConfig and signatures.insecureRegistries from a node config, so that
what a node sees can be reproduced on a laptop. Credentials: --docker-config FILE (or the
node config's registries.dockerConfig) first, then the Docker config as cosign and crane
read it ($DOCKER_CONFIG/config.json, else ~/.docker/config.json). Flags win over the node
config.
`

func (f *registryFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.configPath, "registry-config-path", "",
		"containerd's registry config_path, the hosts.toml tree (e.g. /etc/containerd/certs.d): mirrors, CA files, client certificates")
	cmd.Flags().StringVar(&f.dockerConfig, "docker-config", "",
		"a Docker config.json whose credentials are tried before $DOCKER_CONFIG and ~/.docker/config.json")
	cmd.Flags().StringVar(&f.nodeConfig, "node-config", "",
		"a node config file: take registries.* and signatures.insecureRegistries from it, as the node does")
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-insecure-registry", false,
		"accept any TLS certificate from the registry (expired, self-signed); for testing only")
	cmd.Flags().BoolVar(&f.allowHTTP, "allow-http-registry", false,
		"allow plain HTTP to a registry that is not on loopback (loopback registries may always use HTTP); for testing only")
	cmd.Flags().DurationVarP(&f.timeout, "timeout", "t", 3*time.Minute, "give up after this long")
}

// client returns the run's one registry client.
func (f *registryFlags) client() (*registry.Client, error) {
	o := registry.Options{AllowHTTP: f.allowHTTP, SkipTLSVerify: f.allowInsecure}
	node := nodeconfig.Default()
	if f.nodeConfig != "" {
		n, err := nodeconfig.Load(f.nodeConfig)
		if err != nil {
			return nil, usageError(fmt.Errorf("--node-config: %w", err))
		}
		node = n
		o.HTTPHosts = n.Signatures.InsecureRegistries
	}
	if f.configPath != "" {
		node.Registries.ConfigPath = f.configPath
	}
	if f.dockerConfig != "" {
		// A node may get its file later; a flag names one that is there.
		if _, err := os.Stat(f.dockerConfig); err != nil {
			return nil, usageError(fmt.Errorf("--docker-config: %w", err))
		}
		node.Registries.DockerConfig = f.dockerConfig
	}
	if p := node.Registries.ConfigPath; p != "" && !anyDir(filepath.SplitList(p)) {
		return nil, usageError(fmt.Errorf("registry config path %s is not a directory; give containerd's config_path, e.g. /etc/containerd/certs.d", p))
	}
	o.ConfigPath = node.Registries.ConfigPath
	sources, err := regcreds.Sources(node, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, usageError(fmt.Errorf("--node-config: %w", err))
	}
	o.Keychain = registry.Chain(sources...)
	return registry.New(o), nil
}

func anyDir(paths []string) bool {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

func (f *registryFlags) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), f.timeout)
}

// algorithmFlag validates --signature-algorithm.
func algorithmFlag(s string) (keys.Algorithm, error) {
	switch a := keys.Algorithm(s); a {
	case "", keys.RSAPKCS1SHA256, keys.RSAPSSSHA256, keys.ECDSASHA256:
		return a, nil
	default:
		return "", fmt.Errorf("--signature-algorithm %q: use %s, %s or %s", s, keys.RSAPKCS1SHA256, keys.RSAPSSSHA256, keys.ECDSASHA256)
	}
}
