package nodeconfig

import (
	"strings"
	"testing"
)

func TestCredentialProviders(t *testing.T) {
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nregistries:\n"
	c, err := Parse("n", []byte(head+"  credentialProviders:\n    config: /etc/kubernetes/cp.yaml\n    binDir: /usr/libexec/cp\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Registries.CredentialProviders; got != (CredentialProviders{Config: "/etc/kubernetes/cp.yaml", BinDir: "/usr/libexec/cp"}) || !got.Configured() {
		t.Errorf("credentialProviders = %+v", got)
	}
	if c, err := Parse("n", []byte(head)); err != nil || c.Registries.CredentialProviders.Configured() {
		t.Errorf("empty registries: %+v, %v; want none configured", c, err)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"no binDir":     {head + "  credentialProviders:\n    config: /etc/cp.yaml\n", "set both config"},
		"relative path": {head + "  credentialProviders:\n    config: cp.yaml\n    binDir: /bin\n", "must be absolute paths"},
		"unknown field": {head + "  credentialProviders:\n    configs: /etc/cp.yaml\n", "field configs is not a known field"},
	} {
		if _, err := Parse("n", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v; want %q", name, err, tc.want)
		}
	}
}
