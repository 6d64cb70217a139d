package daemon

import (
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

func TestRegistriesNeedRestart(t *testing.T) {
	cur, next := nodeconfig.Default(), nodeconfig.Default()
	next.Registries.ConfigPath = "/etc/containerd/certs.d"
	if err := needsRestart(cur, next); err == nil || !strings.Contains(err.Error(), "registries.configPath") {
		t.Errorf("needsRestart = %v; want registries.configPath named", err)
	}
	next = nodeconfig.Default()
	next.Registries.DockerConfig = "/x/config.json"
	if err := needsRestart(cur, next); err == nil || !strings.Contains(err.Error(), "registries.dockerConfig") {
		t.Errorf("needsRestart = %v; want registries.dockerConfig named", err)
	}
}
