// Package nodeconfig reads the node's own configuration file: which cluster
// the node belongs to and the per-namespace allow lists of image digests.
//
// Parsing is strict: an unknown field, a duplicate namespace or a malformed
// digest is an error that names the file, the line and the field, so that a
// typo never silently weakens what the node enforces.
package nodeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

const (
	// APIVersion and Kind identify a node config document.
	APIVersion = "nri-csig.io/v1alpha1"
	Kind       = "NodeConfig"
)

// Config is the node configuration.
type Config struct {
	// Cluster is the name of the cluster this node belongs to; security
	// policies are matched against it.
	Cluster string
	// Allowlists are image digests each namespace may run without further checks.
	Allowlists policy.Allowlists
	// UncoveredDeny refuses containers in namespaces no policy or allow list covers.
	UncoveredDeny bool
	// Bundle says where the policy bundle comes from; zero: no bundle.
	Bundle Bundle
	// StateDir keeps the last good bundle and verified signatures across restarts.
	StateDir string
	// Signatures says where image signatures are found.
	Signatures Signatures
	// Guard is the node-integrity guard's section (guard.go).
	Guard Guard
	// Registries is how registries are reached (registries.go).
	Registries Registries
}

// Bundle is the policy bundle's source.
type Bundle struct {
	File       string        // a bundle file, or a directory (e.g. a mounted ConfigMap)
	OCI        string        // an OCI reference polled for bundle artifacts
	Interval   time.Duration // how often sources are polled
	SigningKey string        // public key file: when set, only bundles signed by it are accepted
}

// Configured reports whether a bundle source is set.
func (b Bundle) Configured() bool { return b.File != "" || b.OCI != "" }

// Signatures says where signatures are discovered.
type Signatures struct {
	// Dir is a local directory of signatures, for air-gapped nodes.
	Dir string
	// InsecureRegistries may be reached over plain HTTP (loopback always may).
	InsecureRegistries []string
	// Registry turns registry discovery off when false (air-gapped nodes).
	Registry bool
}

// DefaultStateDir is where the daemon keeps its state.
const DefaultStateDir = "/var/lib/nri-csig"

// Default is the configuration of a node without a config file: no allow
// lists, no cluster name, no bundle.
func Default() *Config {
	return &Config{Allowlists: policy.Allowlists{}, StateDir: DefaultStateDir, Signatures: Signatures{Registry: true},
		Bundle: Bundle{Interval: 30 * time.Second}}
}

// Example is a commented config file, printed by "nri-csig run --help".
const Example = `apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
# The cluster this node belongs to: security policies name the clusters they cover.
cluster: prod-hangzhou
# Image digests (manifest, index, or config digest as "crictl images" shows it)
# that may run in a namespace without further checks, e.g. system images.
allowlists:
  - namespace: kube-system
    digests:
      - sha256:4b5c7e0cb2b04bb1d1b4b4b4e0f8a5b1c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8
# Namespaces no policy or allow list covers: allow (default, as in the
# product) or deny.
uncovered: allow
# The policy bundle (witnesses, security policies, exemptions, revocations).
bundle:
  file: /etc/nri-csig/bundle          # a file, or a directory such as a mounted ConfigMap
  # oci: registry.example/security/csig-bundle:prod
  interval: 30s
  signingKey: /etc/nri-csig/bundle-signing.pub   # refuse bundles not signed by this key
stateDir: /var/lib/nri-csig            # last good bundle and verified signatures
signatures:
  registry: true                       # look for signatures in the image's repository
  # dir: /var/lib/nri-csig/imported-signatures   # air-gapped nodes
  # insecureRegistries: [registry.local:5000]    # plain HTTP (loopback always may)
` + RegistriesExample

// MaxSize bounds a node config file: real ones are a few kilobytes, even
// with long allow lists.
const MaxSize = 1 << 20

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading node config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading node config: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: the node config is larger than %d bytes (1 MiB); it holds a cluster name, allow lists and a few paths", path, MaxSize)
	}
	return Parse(path, data)
}

// file mirrors the YAML document.
type file struct {
	APIVersion string          `yaml:"apiVersion"`
	Kind       string          `yaml:"kind"`
	Cluster    string          `yaml:"cluster"`
	Allowlists []allowlist     `yaml:"allowlists"`
	Uncovered  *located        `yaml:"uncovered"`
	Bundle     *bundleFile     `yaml:"bundle"`
	StateDir   string          `yaml:"stateDir"`
	Signatures *signaturesFile `yaml:"signatures"`
	Guard      *guardFile      `yaml:"guard"`
	Registries *registriesFile `yaml:"registries"`
}

type bundleFile struct {
	File       string   `yaml:"file"`
	OCI        string   `yaml:"oci"`
	Interval   *located `yaml:"interval"`
	SigningKey string   `yaml:"signingKey"`
}

type signaturesFile struct {
	Registry           *bool    `yaml:"registry"`
	Dir                string   `yaml:"dir"`
	InsecureRegistries []string `yaml:"insecureRegistries"`
}

type allowlist struct {
	Namespace located   `yaml:"namespace"`
	Digests   []located `yaml:"digests"`
}

// located is a scalar that remembers its line, for error messages.
type located struct {
	Value string
	Line  int
}

func (l *located) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &lineError{line: n.Line, msg: "expected a single value"}
	}
	l.Value, l.Line = n.Value, n.Line
	return nil
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// dns1123Label is what Kubernetes accepts as a namespace name.
var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// clusterName is what a bundle's SecurityPolicy may name in spec.clusters
// (policy.ValidClusterName): a printable identifier of at most 253 bytes.
// It is compiled when first used: its bounded repetition makes a program of
// about 200 KB that every CLI run (--node-config) would build at start.
var clusterName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$`)
})

// Parse validates a config document; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: the node config is larger than %d bytes (1 MiB); it holds a cluster name, allow lists and a few paths", name, MaxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty; it needs at least apiVersion: %s and kind: %s", name, APIVersion, Kind)
		}
		return nil, fmt.Errorf("%s:%s", name, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document; a node config is one document", name)
	}
	if f.APIVersion != APIVersion || f.Kind != Kind {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q: want apiVersion: %s and kind: %s", name, f.APIVersion, f.Kind, APIVersion, Kind)
	}
	c := Default()
	if f.Cluster != "" && !clusterName().MatchString(f.Cluster) {
		shown := f.Cluster
		if len(shown) > 64 {
			shown = shown[:64] + "..."
		}
		return nil, fmt.Errorf("%s: cluster: %q is not a cluster name: want letters, digits, '.', '_', ':' or '-' (starting and ending with a letter or digit), at most 253 bytes, as a SecurityPolicy's spec.clusters names it", name, shown)
	}
	c.Cluster = f.Cluster
	for _, a := range f.Allowlists {
		ns := a.Namespace
		if ns.Value == "" {
			return nil, fmt.Errorf("%s: allowlists: an entry has no namespace", name)
		}
		if !dns1123Label.MatchString(ns.Value) {
			return nil, fail(ns.Line, "allowlists.namespace: %q is not a valid Kubernetes namespace name", ns.Value)
		}
		if _, dup := c.Allowlists[ns.Value]; dup {
			return nil, fail(ns.Line, "allowlists.namespace: namespace %q is listed twice; merge its digests into one entry", ns.Value)
		}
		digests := []string{}
		for _, d := range a.Digests {
			if !digestRE.MatchString(d.Value) {
				return nil, fail(d.Line, "allowlists.digests: %q is not an image digest; want sha256: followed by 64 lower-case hex digits (tags are not accepted: they can be moved)", d.Value)
			}
			digests = append(digests, d.Value)
		}
		c.Allowlists[ns.Value] = digests
	}
	if u := f.Uncovered; u != nil {
		switch u.Value {
		case "allow":
		case "deny":
			c.UncoveredDeny = true
		default:
			return nil, fail(u.Line, "uncovered: %q; want allow or deny", u.Value)
		}
	}
	if b := f.Bundle; b != nil {
		c.Bundle.File, c.Bundle.OCI, c.Bundle.SigningKey = b.File, b.OCI, b.SigningKey
		if b.Interval != nil {
			d, err := time.ParseDuration(b.Interval.Value)
			if err != nil || d < time.Second {
				return nil, fail(b.Interval.Line, "bundle.interval: %q; want a duration of at least 1s, e.g. 30s", b.Interval.Value)
			}
			c.Bundle.Interval = d
		}
		if !c.Bundle.Configured() {
			return nil, fmt.Errorf("%s: bundle: set file (a file or directory) or oci (a reference), or remove the bundle section", name)
		}
	}
	if f.StateDir != "" {
		c.StateDir = f.StateDir
	}
	if sg := f.Signatures; sg != nil {
		if sg.Registry != nil {
			c.Signatures.Registry = *sg.Registry
		}
		c.Signatures.Dir, c.Signatures.InsecureRegistries = sg.Dir, sg.InsecureRegistries
		if !c.Signatures.Registry && c.Signatures.Dir == "" {
			return nil, fmt.Errorf("%s: signatures: registry is false and no dir is set: no signature could ever be found", name)
		}
	}
	if err := parseGuard(name, f.Guard, c); err != nil {
		return nil, err
	}
	if err := parseRegistries(name, f.Registries, c); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlError turns yaml.v3's messages ("yaml: unmarshal errors:\n  line 3: field
// x not found in type nodeconfig.file") into "3: unknown field x".
func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := strings.TrimPrefix(te.Errors[0], "line ")
		msg = regexp.MustCompile(` not found in type [\w.]+`).ReplaceAllString(msg, " is not a known field")
		msg = strings.Replace(msg, ": field ", ": field ", 1)
		return msg
	}
	var le *lineError
	if errors.As(err, &le) {
		return fmt.Sprintf("%d: %s", le.line, le.msg)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		return rest
	}
	return " " + msg
}
