package packaging

import (
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// What the daemon reads of registries is readable under the unit's
// sandbox and nothing of it is opened for writing: the installed config
// names containerd's default hosts.toml tree, the unit gives the default
// keychain a folder of /etc (a system service has no home), keeps /etc
// read-only (ProtectSystem=strict) and neither hides nor opens for writing
// the registry paths.
func TestUnitReadsRegistrySettingsReadOnly(t *testing.T) {
	c, err := nodeconfig.Load("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Registries.ConfigPath != "/etc/containerd/certs.d" {
		t.Errorf("config.yaml registries.configPath = %q; want containerd's /etc/containerd/certs.d", c.Registries.ConfigPath)
	}
	svc := unitFile(t, "../systemd/nri-csig.service")
	if v := svc["Service.Environment"]; len(v) != 1 || v[0] != "DOCKER_CONFIG=/etc/nri-csig/docker" {
		t.Errorf("nri-csig.service Environment=%q; want DOCKER_CONFIG=/etc/nri-csig/docker", v)
	}
	if v := svc["Service.ProtectSystem"]; len(v) != 1 || v[0] != "strict" {
		t.Errorf("nri-csig.service ProtectSystem=%q; want strict (the registry settings are only read)", v)
	}
	for _, key := range []string{"ReadWritePaths", "BindPaths", "InaccessiblePaths", "TemporaryFileSystem"} {
		for _, v := range svc["Service."+key] {
			for _, p := range []string{"/etc/containerd", "/etc/nri-csig", "/etc"} {
				if strings.Contains(" "+v+" ", " "+p+" ") || strings.Contains(v, p+"/") {
					t.Errorf("nri-csig.service %s=%s touches %s, which the daemon only reads", key, v, p)
				}
			}
		}
	}
}
