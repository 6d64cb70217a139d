package nodeconfig

// The registries section: how the node reaches registries for signatures
// and bundles. Each credential source keeps its fields in a block of its own
// (credentialproviders.go: kubelet's credential provider plugins).

// Registries says how registries are reached.
type Registries struct {
	// CredentialProviders are kubelet's credential provider plugins
	// (credentialproviders.go); zero: none.
	CredentialProviders CredentialProviders
}

type registriesFile struct {
	CredentialProviders *credentialProvidersFile `yaml:"credentialProviders"`
}

// RegistriesExample is the registries section of Example.
const RegistriesExample = "registries:\n" + CredentialProvidersExample

func parseRegistries(name string, f *registriesFile, c *Config) error {
	if f == nil {
		return nil
	}
	return parseCredentialProviders(name, f.CredentialProviders, c)
}
