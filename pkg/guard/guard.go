package guard

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Mount is one mount of the container as the runtime will make it.
type Mount struct {
	Source      string
	Destination string
	Type        string
	Options     []string
	// Plugin is the NRI plugin that added the mount; empty: the pod spec (CRI).
	Plugin string
}

// Device is one device node the container gets.
type Device struct {
	Path         string
	Type         string // "b" block, "c" char, ...
	Major, Minor int64
	Plugin       string // as for Mount
}

// Container is what the guard judges: one container about to be created.
type Container struct {
	ID        string // the container's ID (CRI's own volumes are named after it)
	PodID     string // the pod sandbox's ID (CRI's own /etc/hosts etc. are named after it)
	Namespace string // the pod's Kubernetes namespace
	// ConfigDigest and ImageDigest identify the image (NRI Container.image);
	// an allow entry names one of them.
	ConfigDigest string
	ImageDigest  string
	Mounts       []Mount
	Devices      []Device
	// Namespaces are the Linux namespace types (pid, mount, network, ...) the
	// container gets, its own or joined; a type that is absent is the host's.
	Namespaces []string
	// PodNamespaces are the pod sandbox's namespace types, when the runtime
	// reported them (nil: unknown). A host-PID pod's sandbox has no "pid"
	// entry, while its containers join the sandbox's (the host's) by path.
	PodNamespaces []string
}

// Config says what the guard protects on this node and whom it lets through.
// Empty fields take the defaults of the standard layout (see DefaultConfig).
type Config struct {
	NRISocket           string // default /var/run/nri/nri.sock; its directory is protected too
	NRIPluginPath       string // default /opt/nri/plugins (and /opt/nri is protected)
	NRIPluginConfigPath string // default /etc/nri/conf.d
	ContainerdSocket    string // default /run/containerd/containerd.sock; its directory is protected
	ContainerdRoot      string // default /var/lib/containerd
	ContainerdState     string // default /run/containerd
	ContainerdConfig    string // default /etc/containerd
	ConfigDir           string // nri-csig's config, default /etc/nri-csig
	StateDir            string // nri-csig's state, default /var/lib/nri-csig
	Binary              string // the nri-csig executable, default /usr/bin/nri-csig
	// Extra are further host paths no container may reach.
	Extra []string
	// Allow are the only exceptions.
	Allow []Allow
}

// Allow lets the containers of one namespace whose image is one of Digests
// reach Paths (a mount source equal to or below one of them), and run
// privileged or in the host's PID namespace when said so. Every field must
// match: there is no namespace-wide or image-wide exception.
type Allow struct {
	Namespace  string
	Digests    []string // config digest (the CRI image ID) or manifest/index digest
	Paths      []string
	Privileged bool // rw sysfs (CRI's privileged) and raw host devices
	HostPID    bool
}

// Default paths of a standard containerd + NRI + nri-csig installation.
const (
	DefaultNRISocket           = "/var/run/nri/nri.sock"
	DefaultNRIPluginPath       = "/opt/nri/plugins"
	DefaultNRIPluginConfigPath = "/etc/nri/conf.d"
	DefaultContainerdSocket    = "/run/containerd/containerd.sock"
	DefaultContainerdRoot      = "/var/lib/containerd"
	DefaultContainerdState     = "/run/containerd"
	DefaultContainerdConfig    = "/etc/containerd"
	DefaultConfigDir           = "/etc/nri-csig"
	DefaultStateDir            = "/var/lib/nri-csig"
	DefaultBinary              = "/usr/bin/nri-csig"
	// DefaultDaemonBinary is what nri-csig.service and the pre-installed
	// wrapper run (the node daemon's build).
	DefaultDaemonBinary = "/usr/bin/nri-csigd"
)

// Resolver follows host symlinks in an absolute, cleaned path, as the kernel
// will when the runtime mounts it. It returns the path unchanged when it
// cannot be followed further because it does not exist (the runtime creates
// missing hostPath directories), and an error when it cannot tell.
type Resolver func(path string) (string, error)

// protected is one path the guard protects, with what it is, for messages.
type protected struct {
	path string
	what string
}

// Guard judges containers against one Config. It is safe for concurrent use.
type Guard struct {
	protected []protected
	allow     []Allow
	// criRoot and criState are the CRI plugin's directories, whose
	// per-pod and per-container files the CRI mounts itself.
	criRoot, criState string
	resolve           Resolver
}

// New returns a guard for c. resolve may be nil: paths are then compared as
// written (cleaned), without following host symlinks.
func New(c Config, resolve Resolver) *Guard {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	nriSock := def(c.NRISocket, DefaultNRISocket)
	ctrdSock := def(c.ContainerdSocket, DefaultContainerdSocket)
	root := def(c.ContainerdRoot, DefaultContainerdRoot)
	state := def(c.ContainerdState, DefaultContainerdState)
	g := &Guard{
		criRoot:  Clean(path.Join(root, "io.containerd.grpc.v1.cri")),
		criState: Clean(path.Join(state, "io.containerd.grpc.v1.cri")),
		resolve:  resolve,
	}
	add := func(p, what string) {
		if p == "" {
			return
		}
		p = Clean(p)
		for _, q := range g.protected {
			if q.path == p {
				return
			}
		}
		g.protected = append(g.protected, protected{p, what})
	}
	add(nriSock, "the NRI socket")
	add(path.Dir(nriSock), "the NRI socket's directory")
	add("/run/nri", "NRI's runtime directory")
	add(ctrdSock, "the containerd socket")
	add(path.Dir(ctrdSock), "the containerd socket's directory")
	add(state, "containerd's state directory")
	add(root, "containerd's root directory")
	add(def(c.ContainerdConfig, DefaultContainerdConfig), "containerd's config directory")
	add(def(c.NRIPluginPath, DefaultNRIPluginPath), "NRI's plugin directory (pre-installed plugins)")
	add("/opt/nri", "NRI's plugin tree")
	add(def(c.NRIPluginConfigPath, DefaultNRIPluginConfigPath), "NRI's plugin config directory")
	add(def(c.ConfigDir, DefaultConfigDir), "nri-csig's config directory")
	add(def(c.StateDir, DefaultStateDir), "nri-csig's state directory")
	add(def(c.Binary, DefaultBinary), "the nri-csig executable")
	add(DefaultDaemonBinary, "the nri-csig node daemon's executable")
	add("/run/nri-csig", "nri-csig's runtime directory (the pre-installed daemon's PID file)")
	for _, p := range c.Extra {
		add(p, "a path the node config protects")
	}
	for _, a := range c.Allow {
		a.Paths = slices.Clone(a.Paths)
		for i, p := range a.Paths {
			a.Paths[i] = Clean(p)
		}
		g.allow = append(g.allow, a)
	}
	return g
}

// Protected lists the protected paths, cleaned (for docs and diagnostics).
func (g *Guard) Protected() []string {
	out := make([]string, len(g.protected))
	for i, p := range g.protected {
		out[i] = p.path
	}
	return out
}

// Clean returns p as an absolute, lexically clean path with /var/run spelt
// /run (on every systemd distribution /var/run is a symlink to /run).
func Clean(p string) string {
	p = path.Clean("/" + p)
	if p == "/var/run" || strings.HasPrefix(p, "/var/run/") {
		p = "/run" + strings.TrimPrefix(p, "/var/run")
	}
	return p
}

// within reports whether p is q or below it.
func within(p, q string) bool {
	return p == q || q == "/" || strings.HasPrefix(p, q+"/")
}

// Check judges c. It returns a refusing verdict (Kind policy.RuleNodeIntegrity)
// and true when c would reach what the guard protects and no Allow entry
// lets it; otherwise a zero verdict and false.
func (g *Guard) Check(c Container) (policy.Verdict, bool) {
	allows := g.applicable(c)
	var findings []string
	for _, m := range c.Mounts {
		if f := g.checkMount(c, m, allows); f != "" {
			findings = append(findings, f)
		}
	}
	if !slices.ContainsFunc(allows, func(a Allow) bool { return a.Privileged }) {
		for _, m := range c.Mounts {
			if m.Type == "sysfs" && !slices.Contains(m.Options, "ro") {
				findings = append(findings, "it is privileged (sysfs is mounted read-write, which the CRI does only for privileged containers): a privileged container can mount the host's disks and reach everything below")
				break
			}
		}
		for _, d := range c.Devices {
			if raw := rawDevice(d); raw != "" {
				findings = append(findings, fmt.Sprintf("it gets the host device %s (%s)%s: raw access to the host's disks or memory reaches everything below", d.Path, raw, by(d.Plugin)))
			}
		}
	}
	switch {
	case c.Namespaces == nil:
		findings = append(findings, "the runtime did not report the container's Linux namespaces, so whether it shares the host's cannot be told")
	case !slices.Contains(c.Namespaces, "mount"):
		findings = append(findings, "it has no mount namespace of its own: it sees the host's file tree")
	case slices.ContainsFunc(allows, func(a Allow) bool { return a.HostPID }):
	case !slices.Contains(c.Namespaces, "pid"), c.PodNamespaces != nil && !slices.Contains(c.PodNamespaces, "pid"):
		findings = append(findings, "it shares the host's PID namespace (hostPID): it can signal or trace nri-csig and containerd")
	}
	if len(findings) == 0 {
		return policy.Verdict{}, false
	}
	digest := c.ImageDigest
	if digest == "" {
		digest = c.ConfigDigest
	}
	return policy.Verdict{
		Decision: policy.Deny,
		Kind:     policy.RuleNodeIntegrity,
		Digest:   digest,
		Reason: fmt.Sprintf("node integrity: %s; a container that reaches the machinery enforcing image signatures could switch it off, so no signature, allow list or exemption overrides this. If it is a trusted system component, allow exactly this in the node config: guard.allow: [{namespace: %s, digests: [%s], ...}] (see docs/THREAT-MODEL.md)",
			strings.Join(findings, "; "), orQuote(c.Namespace), orUnknown(c.ConfigDigest)),
	}, true
}

// applicable returns the allow entries for c's namespace and image.
func (g *Guard) applicable(c Container) []Allow {
	var out []Allow
	for _, a := range g.allow {
		if a.Namespace != c.Namespace {
			continue
		}
		if (c.ConfigDigest != "" && slices.Contains(a.Digests, c.ConfigDigest)) || (c.ImageDigest != "" && slices.Contains(a.Digests, c.ImageDigest)) {
			out = append(out, a)
		}
	}
	return out
}

// checkMount returns what is wrong with m, or "".
func (g *Guard) checkMount(c Container, m Mount, allows []Allow) string {
	for _, src := range hostPaths(m) {
		cleaned := Clean(src)
		if g.criOwn(c, m, cleaned) {
			continue
		}
		resolved := cleaned
		if g.resolve != nil {
			r, err := g.resolve(cleaned)
			if err != nil {
				return fmt.Sprintf("the host path %s mounted at %s%s cannot be resolved on the host (%v), so it might lead anywhere", src, m.Destination, by(m.Plugin), err)
			}
			resolved = Clean(r)
		}
		if slices.ContainsFunc(allows, func(a Allow) bool {
			return slices.ContainsFunc(a.Paths, func(p string) bool { return within(cleaned, p) && within(resolved, p) })
		}) {
			continue
		}
		// Name the protected path the source lies in (the deepest), else the
		// first one below it.
		var hit *protected
		for i, p := range g.protected {
			if within(resolved, p.path) && (hit == nil || !within(resolved, hit.path) || len(p.path) > len(hit.path)) {
				hit = &g.protected[i]
			} else if hit == nil && within(p.path, resolved) {
				hit = &g.protected[i]
			}
		}
		if hit != nil {
			via := ""
			if resolved != cleaned {
				via = " (a symlink to " + resolved + ")"
			}
			return fmt.Sprintf("the host path %s%s mounted at %s%s reaches %s %s", src, via, m.Destination, by(m.Plugin), hit.what, hit.path)
		}
	}
	return ""
}

// hostPaths returns the host paths a mount makes visible: its source when it
// is a path (bind mounts; pseudo file systems name no path), and overlay's
// lowerdir/upperdir/workdir options.
func hostPaths(m Mount) []string {
	var out []string
	if strings.HasPrefix(m.Source, "/") {
		out = append(out, m.Source)
	}
	for _, o := range m.Options {
		for _, key := range []string{"lowerdir=", "upperdir=", "workdir="} {
			if v, ok := strings.CutPrefix(o, key); ok {
				for _, p := range strings.Split(v, ":") {
					if strings.HasPrefix(p, "/") {
						out = append(out, p)
					}
				}
			}
		}
	}
	return out
}

// criOwn reports whether m is one of the files the CRI itself mounts into
// every container from its own directories: the pod's /etc/hosts,
// /etc/hostname, /etc/resolv.conf and /dev/shm, the container's image
// volumes, and the pod's image volumes. They are named after this very pod or
// container, so no other pod's or containerd's own state is reached.
func (g *Guard) criOwn(c Container, m Mount, src string) bool {
	if m.Plugin != "" || c.PodID == "" || strings.ContainsAny(c.PodID, "/.") || strings.ContainsAny(c.ID, "/.") {
		return false
	}
	sandbox := path.Join(g.criRoot, "sandboxes", c.PodID)
	switch {
	case src == path.Join(sandbox, "hosts") && m.Destination == "/etc/hosts",
		src == path.Join(sandbox, "hostname") && m.Destination == "/etc/hostname",
		src == path.Join(sandbox, "resolv.conf") && m.Destination == "/etc/resolv.conf",
		src == path.Join(g.criState, "sandboxes", c.PodID, "shm") && m.Destination == "/dev/shm":
		return true
	}
	if c.ID != "" && strings.HasPrefix(src, path.Join(g.criRoot, "containers", c.ID, "volumes")+"/") {
		return true
	}
	return strings.HasPrefix(src, path.Join(g.criState, "image-volumes", c.PodID)+"/")
}

// rawDevice names a device that gives raw access to the host's disks or
// memory: any block device, /dev/mem, /dev/kmem, /dev/port.
func rawDevice(d Device) string {
	switch {
	case d.Type == "b":
		return "a block device"
	case d.Type == "c" && d.Major == 1 && (d.Minor == 1 || d.Minor == 2 || d.Minor == 4):
		return "host memory or I/O ports"
	}
	return ""
}

func by(plugin string) string {
	if plugin == "" {
		return ""
	}
	return " (added by NRI plugin " + plugin + ")"
}

func orQuote(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "<image digest>"
	}
	return s
}
