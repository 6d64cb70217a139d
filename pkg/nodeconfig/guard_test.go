package nodeconfig

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/guard"
)

func TestGuardSection(t *testing.T) {
	c, err := Parse("node.yaml", []byte(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
guard:
  nriSocket: /srv/nri/nri.sock
  containerdRoot: /data/containerd
  protectedPaths: [/etc/kubernetes/pki]
  allow:
    - namespace: monitoring
      digests: [`+digestA+`]
      paths: [/]
      hostPID: true
  otherPlugins:
    mounts: refuse
    devices: record
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Guard{RefuseMounts: true, Paths: guard.Config{NRISocket: "/srv/nri/nri.sock", ContainerdRoot: "/data/containerd", Extra: []string{"/etc/kubernetes/pki"},
		Allow: []guard.Allow{{Namespace: "monitoring", Digests: []string{digestA}, Paths: []string{"/"}, HostPID: true}}}}
	if !reflect.DeepEqual(c.Guard, want) {
		t.Errorf("guard = %+v\nwant    %+v", c.Guard, want)
	}
}

func TestGuardExampleParses(t *testing.T) {
	c, err := Parse("example", []byte(Example+GuardExample))
	if err != nil {
		t.Fatalf("the guard example printed by --help does not parse: %v", err)
	}
	if c.Guard.RefuseMounts || c.Guard.RefuseDevices || len(c.Guard.Paths.Allow) != 0 {
		t.Errorf("the example's guard = %+v; want the defaults", c.Guard)
	}
}

func TestGuardErrors(t *testing.T) {
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nguard:\n"
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown field":     {head + "  nriSockt: /x\n", "node.yaml:4: field nriSockt is not a known field"},
		"relative path":     {head + "  containerdRoot: var/lib\n", `node.yaml:4: guard.containerdRoot: "var/lib" is not an absolute path`},
		"relative extra":    {head + "  protectedPaths: [x]\n", "guard.protectedPaths"},
		"no namespace":      {head + "  allow:\n    - digests: [" + digestA + "]\n      paths: [/]\n", "an entry has no namespace"},
		"bad namespace":     {head + "  allow:\n    - namespace: A_B\n", `node.yaml:5: guard.allow.namespace: "A_B"`},
		"no digests":        {head + "  allow:\n    - namespace: a\n      paths: [/]\n", "no namespace-wide exception"},
		"bad digest":        {head + "  allow:\n    - namespace: a\n      digests: [latest]\n      paths: [/]\n", `node.yaml:6: guard.allow.digests: "latest"`},
		"allows nothing":    {head + "  allow:\n    - namespace: a\n      digests: [" + digestA + "]\n", "allows nothing"},
		"relative allow":    {head + "  allow:\n    - namespace: a\n      digests: [" + digestA + "]\n      paths: [run]\n", "guard.allow.paths"},
		"entry typo":        {head + "  allow:\n    - namespace: a\n      digests: [" + digestA + "]\n      hostPid: true\n", "field hostPid is not a known field"},
		"other plugins":     {head + "  otherPlugins:\n    mounts: deny\n", `node.yaml:5: guard.otherPlugins.mounts: "deny"; want record or refuse`},
		"other plugins key": {head + "  otherPlugins:\n    hooks: refuse\n", "field hooks is not a known field"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("node.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
