package nodeconfig

import (
	"fmt"
	"path/filepath"
)

// Registries says how the daemon reaches registries.
type Registries struct {
	// CredentialProviders are kubelet's credential provider plugins; zero: none.
	CredentialProviders CredentialProviders
}

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

type registriesFile struct {
	CredentialProviders *credentialProvidersFile `yaml:"credentialProviders"`
}

type credentialProvidersFile struct {
	Config string `yaml:"config"`
	BinDir string `yaml:"binDir"`
}

func parseRegistries(name string, f *registriesFile, c *Config) error {
	if f == nil || f.CredentialProviders == nil {
		return nil
	}
	cp := f.CredentialProviders
	if cp.Config == "" || cp.BinDir == "" {
		return fmt.Errorf("%s: registries.credentialProviders: set both config (kubelet's --image-credential-provider-config) and binDir (its --image-credential-provider-bin-dir), or remove the section", name)
	}
	if !filepath.IsAbs(cp.Config) || !filepath.IsAbs(cp.BinDir) {
		return fmt.Errorf("%s: registries.credentialProviders: config %q and binDir %q must be absolute paths", name, cp.Config, cp.BinDir)
	}
	c.Registries.CredentialProviders = CredentialProviders{Config: cp.Config, BinDir: cp.BinDir}
	return nil
}
