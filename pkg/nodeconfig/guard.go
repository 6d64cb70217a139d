package nodeconfig

import (
	"fmt"
	"path"
	"slices"

	"github.com/nri-csig/nri-csig/pkg/guard"
)

// Guard is the node-integrity guard's section of the node config: where the
// enforcing machinery lives on this node (defaults: the standard layout, see
// pkg/guard), the only containers that may reach it, and what is done with
// the mounts and devices other NRI plugins add.
type Guard struct {
	// Paths are the protected paths and the allow entries, for guard.New.
	Paths guard.Config
	// RefuseMounts and RefuseDevices refuse a container nri-csig would allow
	// when another NRI plugin added mounts (or devices) to it. When false (the
	// default) such additions are recorded (CSIG_EVENT=adjust) and the guard
	// still refuses those that reach the machinery.
	RefuseMounts  bool
	RefuseDevices bool
}

// GuardExample is the commented guard section (printed with Example).
const GuardExample = `# The node-integrity guard refuses, whatever the image's signatures, every
# container that would reach the machinery enforcing them: a mount of the NRI
# or containerd socket, containerd's state, root or config, nri-csig's config,
# state or binary, /opt/nri (or any parent such as /, /run, /var), a
# privileged container, one in the host's PID namespace, raw host devices.
guard:
  # Where things are when not in the standard places (these are the defaults).
  # nriSocket: /var/run/nri/nri.sock
  # nriPluginPath: /opt/nri/plugins
  # nriPluginConfigPath: /etc/nri/conf.d
  # containerdSocket: /run/containerd/containerd.sock
  # containerdRoot: /var/lib/containerd
  # containerdState: /run/containerd
  # containerdConfig: /etc/containerd
  # protectedPaths: [/etc/kubernetes/pki]   # more paths no container may reach
  # The only exceptions: namespace AND image digest AND what it may reach.
  # allow:
  #   - namespace: monitoring
  #     digests: [sha256:…]                 # config digest (crictl images) or manifest digest
  #     paths: [/]                          # mount sources at or below these
  #     hostPID: true
  #     privileged: false
  # Mounts and devices other NRI plugins add to containers nri-csig allows:
  # record (default: an audit record names the plugin) or refuse.
  otherPlugins:
    mounts: record
    devices: record
`

type guardFile struct {
	NRISocket           *located      `yaml:"nriSocket"`
	NRIPluginPath       *located      `yaml:"nriPluginPath"`
	NRIPluginConfigPath *located      `yaml:"nriPluginConfigPath"`
	ContainerdSocket    *located      `yaml:"containerdSocket"`
	ContainerdRoot      *located      `yaml:"containerdRoot"`
	ContainerdState     *located      `yaml:"containerdState"`
	ContainerdConfig    *located      `yaml:"containerdConfig"`
	ProtectedPaths      []located     `yaml:"protectedPaths"`
	Allow               []guardAllow  `yaml:"allow"`
	OtherPlugins        *otherPlugins `yaml:"otherPlugins"`
}

type guardAllow struct {
	Namespace  located   `yaml:"namespace"`
	Digests    []located `yaml:"digests"`
	Paths      []located `yaml:"paths"`
	Privileged bool      `yaml:"privileged"`
	HostPID    bool      `yaml:"hostPID"`
}

type otherPlugins struct {
	Mounts  *located `yaml:"mounts"`
	Devices *located `yaml:"devices"`
}

// parseGuard fills c.Guard from the file's guard section (nil: defaults).
func parseGuard(name string, g *guardFile, c *Config) error {
	if g == nil {
		return nil
	}
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	absolute := func(field string, l *located) (string, error) {
		if l == nil {
			return "", nil
		}
		if !path.IsAbs(l.Value) {
			return "", fail(l.Line, "guard.%s: %q is not an absolute path", field, l.Value)
		}
		return l.Value, nil
	}
	p := &c.Guard.Paths
	for _, f := range []struct {
		field string
		src   *located
		dst   *string
	}{
		{"nriSocket", g.NRISocket, &p.NRISocket},
		{"nriPluginPath", g.NRIPluginPath, &p.NRIPluginPath},
		{"nriPluginConfigPath", g.NRIPluginConfigPath, &p.NRIPluginConfigPath},
		{"containerdSocket", g.ContainerdSocket, &p.ContainerdSocket},
		{"containerdRoot", g.ContainerdRoot, &p.ContainerdRoot},
		{"containerdState", g.ContainerdState, &p.ContainerdState},
		{"containerdConfig", g.ContainerdConfig, &p.ContainerdConfig},
	} {
		v, err := absolute(f.field, f.src)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	for i := range g.ProtectedPaths {
		v, err := absolute("protectedPaths", &g.ProtectedPaths[i])
		if err != nil {
			return err
		}
		p.Extra = append(p.Extra, v)
	}
	for _, a := range g.Allow {
		ns := a.Namespace
		if ns.Value == "" {
			return fmt.Errorf("%s: guard.allow: an entry has no namespace; every exception names its namespace and image digests", name)
		}
		if !dns1123Label.MatchString(ns.Value) {
			return fail(ns.Line, "guard.allow.namespace: %q is not a valid Kubernetes namespace name", ns.Value)
		}
		if len(a.Digests) == 0 {
			return fail(ns.Line, "guard.allow: the entry for namespace %q has no digests; the guard has no namespace-wide exception: name the image digests", ns.Value)
		}
		entry := guard.Allow{Namespace: ns.Value, Privileged: a.Privileged, HostPID: a.HostPID}
		for _, d := range a.Digests {
			if !digestRE.MatchString(d.Value) {
				return fail(d.Line, "guard.allow.digests: %q is not an image digest; want sha256: followed by 64 lower-case hex digits", d.Value)
			}
			entry.Digests = append(entry.Digests, d.Value)
		}
		for i := range a.Paths {
			v, err := absolute("allow.paths", &a.Paths[i])
			if err != nil {
				return err
			}
			entry.Paths = append(entry.Paths, v)
		}
		if len(entry.Paths) == 0 && !entry.Privileged && !entry.HostPID {
			return fail(ns.Line, "guard.allow: the entry for namespace %q allows nothing; set paths, privileged or hostPID", ns.Value)
		}
		p.Allow = append(p.Allow, entry)
	}
	if o := g.OtherPlugins; o != nil {
		for _, f := range []struct {
			field string
			src   *located
			dst   *bool
		}{{"mounts", o.Mounts, &c.Guard.RefuseMounts}, {"devices", o.Devices, &c.Guard.RefuseDevices}} {
			if f.src == nil {
				continue
			}
			if !slices.Contains([]string{"record", "refuse"}, f.src.Value) {
				return fail(f.src.Line, "guard.otherPlugins.%s: %q; want record or refuse", f.field, f.src.Value)
			}
			*f.dst = f.src.Value == "refuse"
		}
	}
	return nil
}
