package nodeconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
	c, err := Parse("example", []byte(Example))
	if err != nil {
		t.Fatalf("the example printed by --help does not parse: %v", err)
	}
	if c.Bundle.File != "/etc/nri-csig/bundle" || c.Bundle.Interval != 30*time.Second || c.UncoveredDeny || !c.Signatures.Registry || c.StateDir != DefaultStateDir {
		t.Errorf("example parsed as %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("n", []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nuncovered: deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.UncoveredDeny || c.Bundle.Configured() || !c.Signatures.Registry || c.StateDir != DefaultStateDir {
		t.Errorf("defaults = %+v", c)
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
		"uncovered":       {head + "uncovered: maybe\n", `node.yaml:3: uncovered: "maybe"; want allow or deny`},
		"interval":        {head + "bundle:\n  file: /b\n  interval: 10ms\n", "node.yaml:5: bundle.interval"},
		"bundle empty":    {head + "bundle:\n  interval: 10s\n", "set file"},
		"no signatures":   {head + "signatures:\n  registry: false\n", "no signature could ever be found"},
		"bundle typo":     {head + "bundle:\n  fiel: /b\n", "node.yaml:4: field fiel is not a known field"},
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

func TestParseBoundsAndClusterNames(t *testing.T) {
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\n"
	for name, tc := range map[string]struct {
		doc  string
		want string // substring of the error; empty: accepted
	}{
		"plain":                {doc: head + "cluster: prod-hangzhou\n"},
		"dots and colons":      {doc: head + "cluster: eu.west:1_a\n"},
		"253 bytes":            {doc: head + "cluster: " + strings.Repeat("a", 253) + "\n"},
		"newline inside":       {doc: head + "cluster: \"prod\\nEVIL\"\n", want: "is not a cluster name"},
		"254 bytes":            {doc: head + "cluster: " + strings.Repeat("a", 254) + "\n", want: "is not a cluster name"},
		"space":                {doc: head + "cluster: prod east\n", want: "is not a cluster name"},
		"wildcard":             {doc: head + "cluster: \"*\"\n", want: "is not a cluster name"},
		"10 MB name":           {doc: head + "cluster: " + strings.Repeat("a", 10<<20) + "\n", want: "larger than 1048576 bytes"},
		"over 1 MiB of digits": {doc: head + "# " + strings.Repeat("x", MaxSize) + "\n", want: "larger than 1048576 bytes"},
	} {
		_, err := Parse("node.yaml", []byte(tc.doc))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Parse = %v; want accepted", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Parse = %v; want an error containing %q", name, err, tc.want)
		case tc.want != "" && len(err.Error()) > 600:
			t.Errorf("%s: the error is %d bytes long; it must not echo the input", name, len(err.Error()))
		}
	}
	// Load reads at most MaxSize+1 bytes of a larger file.
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, []byte(head+"cluster: "+strings.Repeat("a", 100<<20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a 100 MB file = %v; want refused as too large", err)
	}
}
