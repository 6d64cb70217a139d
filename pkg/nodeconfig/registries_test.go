package nodeconfig

import (
	"strings"
	"testing"
)

func TestRegistriesSection(t *testing.T) {
	c, err := Parse("example", []byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if c.Registries.ConfigPath != "/etc/containerd/certs.d" || c.Registries.DockerConfig != "" {
		t.Errorf("Registries = %+v; want the example's configPath", c.Registries)
	}
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\n"
	c, err = Parse("n", []byte(head+"registries:\n  configPath: /etc/containerd/certs.d\n  dockerConfig: /etc/nri-csig/docker/config.json\n"))
	if err != nil || c.Registries.DockerConfig != "/etc/nri-csig/docker/config.json" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	for in, want := range map[string]string{
		"registries:\n  configPath: certs.d\n":           "registries.configPath: \"certs.d\" is a relative path",
		"registries:\n  dockerConfig: config.json\n":     "registries.dockerConfig: \"config.json\" is a relative path",
		"registries:\n  configpath: /etc/containerd/c\n": "configpath is not a known field",
	} {
		if _, err := Parse("n", []byte(head+in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v; want %q", in, err, want)
		}
	}
	if c := Default(); c.Registries != (Registries{}) {
		t.Errorf("Default().Registries = %+v; want empty (reach registries directly)", c.Registries)
	}
}
