package nodeconfig

import (
	"fmt"
	"path/filepath"
)

// The registries section: how the node reaches registries for signatures
// and bundles, the way containerd reaches them for pulls. Kept in its own
// block so that other credential sources (kubelet credential providers)
// join it beside these fields.

// Registries says how registries are reached.
type Registries struct {
	// ConfigPath is containerd's registry config_path, the hosts.toml tree
	// (e.g. /etc/containerd/certs.d, or several separated by ':' as
	// containerd accepts): signatures and bundles are read
	// through the same mirrors, CA files, client certificates and
	// skip_verify as the node's pulls. Empty: registries are reached
	// directly, with the system CAs.
	ConfigPath string
	// DockerConfig is a Docker config.json file (auths, credHelpers,
	// credsStore) whose credentials are tried first. Empty: none.
	DockerConfig string
	// CredentialProviders are kubelet's credential provider plugins
	// (credentialproviders.go), asked after DockerConfig; zero: none.
	CredentialProviders CredentialProviders
}

type registriesFile struct {
	ConfigPath   string `yaml:"configPath"`
	DockerConfig string `yaml:"dockerConfig"`
	// credentialproviders.go
	CredentialProviders *credentialProvidersFile `yaml:"credentialProviders"`
}

// RegistriesExample is the registries section of Example.
const RegistriesExample = `registries:
  # containerd's registry config_path (hosts.toml tree): signatures are read
  # through the same mirrors, CAs and client certificates as the node's pulls.
  configPath: /etc/containerd/certs.d
  # A Docker config.json with credentials for private registries, tried
  # before the default keychain.
  # dockerConfig: /etc/nri-csig/docker/config.json
` + CredentialProvidersExample

func parseRegistries(name string, f *registriesFile, c *Config) error {
	if f == nil {
		return nil
	}
	type path struct{ field, path string }
	paths := []path{{"registries.dockerConfig", f.DockerConfig}}
	for _, p := range filepath.SplitList(f.ConfigPath) { // ':'-separated, as containerd's config_path
		paths = append(paths, path{"registries.configPath", p})
	}
	for _, p := range paths {
		if p.path != "" && !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s: %s: %q is a relative path; give an absolute one (the daemon's working directory is not yours)", name, p.field, p.path)
		}
	}
	c.Registries.ConfigPath, c.Registries.DockerConfig = f.ConfigPath, f.DockerConfig
	return parseCredentialProviders(name, f.CredentialProviders, c)
}
