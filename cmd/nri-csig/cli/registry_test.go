//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestRegistryFlagsFollowCosign: --allow-insecure-registry skips TLS
// verification only; --allow-http-registry allows plain HTTP (issue 11).
func TestRegistryFlagsFollowCosign(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		http, tls bool
	}{
		{nil, false, false},
		{[]string{"--allow-insecure-registry"}, false, true},
		{[]string{"--allow-http-registry"}, true, false},
		{[]string{"--allow-http-registry", "--allow-insecure-registry"}, true, true},
	} {
		var f registryFlags
		cmd := &cobra.Command{}
		f.addFlags(cmd)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		c, err := f.client()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.HTTPAllowed("10.0.0.1:5000"); got != tc.http {
			t.Errorf("%v: plain HTTP to 10.0.0.1:5000 allowed = %v; want %v", tc.args, got, tc.http)
		}
		if got := c.HTTPAllowed("127.0.0.1:5000"); !got {
			t.Errorf("%v: plain HTTP to loopback refused", tc.args)
		}
		if f.allowInsecure != tc.tls {
			t.Errorf("%v: skip TLS verification = %v; want %v", tc.args, f.allowInsecure, tc.tls)
		}
	}
	for _, cmd := range []*cobra.Command{newSignCmd(), newVerifyCmd(), newBundlePushCmd(&bundleFile{}), newBundlePullCmd(&bundleFile{})} {
		for _, name := range []string{"allow-insecure-registry", "allow-http-registry", "timeout", "registry-config-path", "docker-config", "node-config"} {
			if cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s has no --%s", cmd.Name(), name)
			}
		}
	}
}

// --node-config and --registry-config-path are checked before any
// registry is asked, with what to give.
func TestRegistrySettingsChecked(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "node.yaml")
	os.WriteFile(bad, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nregistries:\n  configPath: relative\n"), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nregistries:\n  configPath: "+dir+"\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-config", bad}, "registries.configPath: \"relative\" is a relative path"},
		{[]string{"--registry-config-path", filepath.Join(dir, "none")}, "is not a directory; give containerd's config_path"},
		{[]string{"--node-config", good, "--registry-config-path", filepath.Join(dir, "none")}, "is not a directory"}, // the flag wins
		{[]string{"--node-config", good}, ""},
		{[]string{"--docker-config", filepath.Join(dir, "missing.json")}, "--docker-config: stat " + filepath.Join(dir, "missing.json")},
	} {
		var f registryFlags
		cmd := &cobra.Command{}
		f.addFlags(cmd)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := f.client()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: client() = %v; want %q", tc.args, err, tc.want)
		}
	}
}
