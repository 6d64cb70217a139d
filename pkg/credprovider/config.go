package credprovider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

const (
	// ConfigAPIVersion and ConfigKind identify a CredentialProviderConfig.
	ConfigAPIVersion = "kubelet.config.k8s.io/v1"
	ConfigKind       = "CredentialProviderConfig"
	// PluginAPIVersion is the exec protocol spoken with plugins.
	PluginAPIVersion = "credentialprovider.kubelet.k8s.io/v1"
	// maxConfigSize bounds the config file: real ones are a few kilobytes.
	maxConfigSize = 1 << 20
)

// LoadConfig reads a CredentialProviderConfig file (YAML or JSON) and
// validates it as kubelet does: unknown fields, a provider without a name,
// matchImages or defaultCacheDuration, a duplicate or path-like name and an
// unsupported apiVersion are errors naming the file.
func LoadConfig(path string) (*CredentialProviderConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credential provider config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("credential provider config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("credential provider config %s: larger than %d bytes", path, maxConfigSize)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("credential provider config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig decodes YAML (of which JSON is a subset) strictly into the
// mirror of the upstream type (wire.go): YAML to a generic value, then JSON
// with unknown fields refused, since the upstream types carry JSON tags only.
func parseConfig(data []byte) (*CredentialProviderConfig, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("the file is empty; it needs apiVersion: %s, kind: %s and providers", ConfigAPIVersion, ConfigKind)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("not a JSON-compatible document: %w", err)
	}
	var cfg CredentialProviderConfig
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	if cfg.APIVersion != ConfigAPIVersion || cfg.Kind != ConfigKind {
		return nil, fmt.Errorf("apiVersion %q kind %q: want apiVersion: %s and kind: %s", cfg.APIVersion, cfg.Kind, ConfigAPIVersion, ConfigKind)
	}
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// validate applies kubelet's validateCredentialProviderConfig rules.
func validate(cfg *CredentialProviderConfig) error {
	if len(cfg.Providers) == 0 {
		return errors.New("providers: at least one provider is required")
	}
	seen := map[string]bool{}
	for i, p := range cfg.Providers {
		at := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			return fmt.Errorf("%s.name: required (the plugin's file name in the bin dir)", at)
		case strings.Contains(p.Name, "/"), strings.Contains(p.Name, " "), p.Name == ".", p.Name == "..":
			return fmt.Errorf("%s.name %q: must be a file name, without '/' or spaces", at, p.Name)
		case seen[p.Name]:
			return fmt.Errorf("%s.name %q: listed twice", at, p.Name)
		case p.APIVersion != PluginAPIVersion:
			return fmt.Errorf("%s (%s).apiVersion %q: want %s", at, p.Name, p.APIVersion, PluginAPIVersion)
		case len(p.MatchImages) == 0:
			return fmt.Errorf("%s (%s).matchImages: at least one pattern is required", at, p.Name)
		case p.DefaultCacheDuration == nil:
			return fmt.Errorf("%s (%s).defaultCacheDuration: required, e.g. 12h (0 disables caching)", at, p.Name)
		case p.DefaultCacheDuration.Duration < 0:
			return fmt.Errorf("%s (%s).defaultCacheDuration %s: must not be negative", at, p.Name, p.DefaultCacheDuration.Duration)
		}
		seen[p.Name] = true
		for _, m := range p.MatchImages {
			if _, err := parseSchemeless(m); err != nil {
				return fmt.Errorf("%s (%s).matchImages %q: not a valid pattern: %w", at, p.Name, m, err)
			}
		}
		for _, e := range p.Env {
			if e.Name == "" || strings.Contains(e.Name, "=") {
				return fmt.Errorf("%s (%s).env: name %q is not a variable name", at, p.Name, e.Name)
			}
		}
	}
	return nil
}
