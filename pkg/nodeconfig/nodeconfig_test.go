package nodeconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseValid(t *testing.T) {
	c, err := Parse("node.yaml", []byte(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: prod
allowlists:
  - namespace: kube-system
    digests: [`+digestA+`]
  - namespace: empty
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "prod" {
		t.Errorf("cluster = %q", c.Cluster)
	}
	want := map[string][]string{"kube-system": {digestA}, "empty": {}}
	if !reflect.DeepEqual(map[string][]string(c.Allowlists), want) {
		t.Errorf("allowlists = %v, want %v", c.Allowlists, want)
	}
}

func TestExampleParses(t *testing.T) {
	if _, err := Parse("example", []byte(Example)); err != nil {
		t.Fatalf("the example printed by --help does not parse: %v", err)
	}
}

func TestParseErrorsNameFileLineAndField(t *testing.T) {
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\n"
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown field":   {head + "clustr: x\n", "node.yaml:3: field clustr is not a known field"},
		"nested unknown":  {head + "allowlists:\n  - namespace: a\n    digest: []\n", "node.yaml:5: field digest is not a known field"},
		"bad digest":      {head + "allowlists:\n  - namespace: a\n    digests: [sha256:abc]\n", `node.yaml:5: allowlists.digests: "sha256:abc" is not an image digest`},
		"tag not digest":  {head + "allowlists:\n  - namespace: a\n    digests: [busybox:latest]\n", "tags are not accepted"},
		"duplicate ns":    {head + "allowlists:\n  - namespace: a\n  - namespace: a\n", `node.yaml:5: allowlists.namespace: namespace "a" is listed twice`},
		"bad namespace":   {head + "allowlists:\n  - namespace: Not_OK\n", `node.yaml:4: allowlists.namespace: "Not_OK" is not a valid`},
		"no namespace":    {head + "allowlists:\n  - digests: []\n", "an entry has no namespace"},
		"wrong kind":      {"apiVersion: v1\nkind: ConfigMap\n", `want apiVersion: nri-csig.io/v1alpha1 and kind: NodeConfig`},
		"empty":           {"", "the file is empty"},
		"syntax":          {head + "allowlists: {\n", "node.yaml:3:"},
		"two documents":   {head + "---\n" + head, "more than one YAML document"},
		"list not scalar": {head + "allowlists:\n  - namespace: [a]\n", "node.yaml:4: expected a single value"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("node.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Example))
	f.Add([]byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nallowlists: [{namespace: a, digests: [x]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			for ns, ds := range c.Allowlists {
				if !dns1123Label.MatchString(ns) {
					t.Fatalf("accepted namespace %q", ns)
				}
				for _, d := range ds {
					if !digestRE.MatchString(d) {
						t.Fatalf("accepted digest %q", d)
					}
				}
			}
		}
	})
}
