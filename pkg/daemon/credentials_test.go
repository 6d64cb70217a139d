package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/regcreds"
)

// check-config (and so daemon start) reads kubelet's credential provider
// config and finds its plugins; a missing plugin is refused.
func TestCheckConfigReadsCredentialProviders(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-cred
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    matchImages: ["*.example.com"]
    defaultCacheDuration: 12h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(node, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nregistries:\n  credentialProviders:\n    config: "+providers+"\n    binDir: "+bin+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckConfig(node); err == nil || !strings.Contains(err.Error(), "ecr-cred") || !strings.Contains(err.Error(), "no executable") {
		t.Errorf("CheckConfig without the plugin = %v; want the missing plugin named", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "ecr-cred"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := CheckConfig(node)
	if err != nil {
		t.Fatalf("CheckConfig with the plugin = %v", err)
	}
	s, err := regcreds.Sources(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || !strings.HasPrefix(s[0].Name, "kubelet credential providers ecr-cred") || s[1].Name != registry.DefaultSource.Name {
		t.Errorf("sources = %v; want the kubelet credential providers, then the default keychain", s)
	}
}
