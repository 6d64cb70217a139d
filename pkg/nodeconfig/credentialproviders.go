package nodeconfig

import (
	"fmt"
	"path/filepath"
)

// CredentialProviders points at what kubelet is given for its credential
// provider plugins (package credprovider reads them).
type CredentialProviders struct {
	// Config is kubelet's CredentialProviderConfig file
	// (--image-credential-provider-config).
	Config string
	// BinDir holds the plugins (--image-credential-provider-bin-dir).
	BinDir string
}

// Configured reports whether credential providers are set.
func (c CredentialProviders) Configured() bool { return c.Config != "" }

type credentialProvidersFile struct {
	Config string `yaml:"config"`
	BinDir string `yaml:"binDir"`
}

// CredentialProvidersExample is the credentialProviders part of the
// registries section of Example.
const CredentialProvidersExample = `  # kubelet's credential provider plugins, as kubelet's
  # --image-credential-provider-config and --image-credential-provider-bin-dir:
  # signatures are read with the credentials the node pulls with.
  # credentialProviders:
  #   config: /etc/kubernetes/credential-provider-config.yaml
  #   binDir: /usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec
`

func parseCredentialProviders(name string, cp *credentialProvidersFile, c *Config) error {
	if cp == nil {
		return nil
	}
	if cp.Config == "" || cp.BinDir == "" {
		return fmt.Errorf("%s: registries.credentialProviders: set both config (kubelet's --image-credential-provider-config) and binDir (its --image-credential-provider-bin-dir), or remove the section", name)
	}
	if !filepath.IsAbs(cp.Config) || !filepath.IsAbs(cp.BinDir) {
		return fmt.Errorf("%s: registries.credentialProviders: config %q and binDir %q must be absolute paths", name, cp.Config, cp.BinDir)
	}
	c.Registries.CredentialProviders = CredentialProviders{Config: cp.Config, BinDir: cp.BinDir}
	return nil
}
