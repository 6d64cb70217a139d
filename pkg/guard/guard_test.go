package guard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

const (
	cfgDigest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	mfDigest  = "sha256:mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
	podID     = "0123456789abcdef"
	ctrID     = "fedcba9876543210"
)

// ordinary is a CRI container as containerd 2.4 hands it to NRI: pseudo
// file systems, the CRI's own per-pod files, a kubelet volume.
func ordinary() Container {
	return Container{
		ID: ctrID, PodID: podID, Namespace: "payments", ConfigDigest: cfgDigest, ImageDigest: mfDigest,
		Namespaces:    []string{"pid", "ipc", "uts", "mount", "network"},
		PodNamespaces: []string{"pid", "ipc", "uts", "mount", "network"},
		Mounts: []Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/hosts", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/hostname", Options: []string{"rbind"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/resolv.conf", Options: []string{"rbind"}},
			{Destination: "/dev/shm", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/shm", Options: []string{"rbind"}},
			{Destination: "/data", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/containers/" + ctrID + "/volumes/abc", Options: []string{"rbind"}},
			{Destination: "/var/run/secrets/kubernetes.io/serviceaccount", Type: "bind", Source: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~projected/kube-api-access", Options: []string{"rbind", "ro"}},
			{Destination: "/logs", Type: "bind", Source: "/var/log/pods", Options: []string{"rbind"}},
		},
	}
}

func with(mutate func(*Container)) Container {
	c := ordinary()
	mutate(&c)
	return c
}

func hostPath(src, dst string) func(*Container) {
	return func(c *Container) {
		c.Mounts = append(c.Mounts, Mount{Source: src, Destination: dst, Type: "bind", Options: []string{"rbind", "ro"}})
	}
}

func TestCheck(t *testing.T) {
	g := New(Config{}, nil)
	for name, tc := range map[string]struct {
		c    Container
		want string // "" = allowed; else a part of the reason
	}{
		"ordinary container":           {ordinary(), ""},
		"NRI socket":                   {with(hostPath("/var/run/nri/nri.sock", "/nri.sock")), "reaches the NRI socket /run/nri/nri.sock"},
		"NRI socket spelt /run":        {with(hostPath("/run/nri/nri.sock", "/nri.sock")), "the NRI socket"},
		"NRI directory":                {with(hostPath("/var/run/nri", "/nri")), "the NRI socket's directory /run/nri"},
		"NRI directory trailing slash": {with(hostPath("/run/nri/", "/nri")), "/run/nri"},
		"NRI directory with dots":      {with(hostPath("/run/x/../nri", "/nri")), "/run/nri"},
		"NRI directory double slash":   {with(hostPath("//var//run//nri", "/nri")), "/run/nri"},
		"parent /run":                  {with(hostPath("/run", "/host-run")), "reaches the NRI socket /run/nri/nri.sock"},
		"parent /var/run":              {with(hostPath("/var/run", "/host-run")), "reaches"},
		"parent /var":                  {with(hostPath("/var", "/host-var")), "reaches"},
		"root":                         {with(hostPath("/", "/host")), "reaches"},
		"containerd socket":            {with(hostPath("/run/containerd/containerd.sock", "/c.sock")), "the containerd socket /run/containerd/containerd.sock"},
		"containerd root":              {with(hostPath("/var/lib/containerd", "/c")), "containerd's root directory /var/lib/containerd"},
		"below containerd root":        {with(hostPath("/var/lib/containerd/io.containerd.content.v1.content", "/c")), "containerd's root directory"},
		"containerd config":            {with(hostPath("/etc/containerd/config.toml", "/c")), "containerd's config directory /etc/containerd"},
		"parent /etc":                  {with(hostPath("/etc", "/host-etc")), "reaches"},
		"nri-csig config":              {with(hostPath("/etc/nri-csig", "/c")), "nri-csig's config directory"},
		"nri-csig state":               {with(hostPath("/var/lib/nri-csig/bundle", "/c")), "nri-csig's state directory"},
		"opt nri":                      {with(hostPath("/opt/nri", "/c")), "/opt/nri"},
		"NRI plugin path":              {with(hostPath("/opt/nri/plugins/50-nri-csig", "/c")), "NRI's plugin directory"},
		"parent /opt":                  {with(hostPath("/opt", "/c")), "reaches"},
		"NRI plugin config":            {with(hostPath("/etc/nri/conf.d", "/c")), "NRI's plugin config directory"},
		"the binary":                   {with(hostPath("/usr/bin", "/c")), "the nri-csig executable /usr/bin/nri-csig"},
		"the daemon binary":            {with(hostPath("/usr/bin/nri-csigd", "/c")), "the nri-csig node daemon's executable /usr/bin/nri-csigd"},
		"the PID file":                 {with(hostPath("/var/run/nri-csig/preinstalled.pid", "/c")), "nri-csig's runtime directory"},
		"unrelated /usr/share":         {with(hostPath("/usr/share/ca-certificates", "/c")), ""},
		"unrelated /var/lib/other":     {with(hostPath("/var/lib/containerd-other", "/c")), ""},
		"unrelated /run/other":         {with(hostPath("/run/nrix", "/c")), ""},
		"overlay lowerdir": {with(func(c *Container) {
			c.Mounts = append(c.Mounts, Mount{Type: "overlay", Source: "overlay", Destination: "/o", Options: []string{"lowerdir=/srv/a:/run/containerd", "upperdir=/srv/u"}})
		}), "the containerd socket's directory /run/containerd"},
		"own image volume":           {with(hostPath("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/"+podID+"/sha256:abc", "/iv")), ""},
		"another pod's image volume": {with(hostPath("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/otherpod/sha256:abc", "/iv")), "reaches"},
		"another container's volume": {with(hostPath("/var/lib/containerd/io.containerd.grpc.v1.cri/containers/other/volumes/abc", "/v")), "reaches"},
		"another pod's hosts file":   {with(hostPath("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/otherpod/hosts", "/etc/hosts")), "containerd's root directory"},
		"own hosts file elsewhere":   {with(hostPath("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/"+podID+"/hosts", "/x")), "containerd's root directory"},
		"pod dir escape by dots": {with(func(c *Container) {
			c.Mounts = append(c.Mounts, Mount{Type: "bind", Destination: "/etc/hosts", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/../../../containerd.sock"})
		}), "containerd's root directory"},
		"privileged": {with(func(c *Container) {
			c.Mounts[2].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		}), "it is privileged"},
		"block device": {with(func(c *Container) {
			c.Devices = append(c.Devices, Device{Path: "/dev/sda", Type: "b", Major: 8})
		}), "host device /dev/sda (a block device)"},
		"dev mem": {with(func(c *Container) {
			c.Devices = append(c.Devices, Device{Path: "/dev/mem", Type: "c", Major: 1, Minor: 1})
		}), "host memory"},
		"fuse is fine": {with(func(c *Container) {
			c.Devices = append(c.Devices, Device{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
		}), ""},
		"host PID (pod sandbox has none)": {with(func(c *Container) {
			c.PodNamespaces = []string{"ipc", "uts", "mount", "network"}
		}), "host's PID namespace"},
		"host PID (container has none)": {with(func(c *Container) {
			c.Namespaces = []string{"ipc", "uts", "mount", "network"}
		}), "host's PID namespace"},
		"host network is not refused": {with(func(c *Container) {
			c.PodNamespaces = []string{"pid", "ipc", "mount"}
		}), ""},
		"host mount namespace": {with(func(c *Container) {
			c.Namespaces = []string{"pid", "network"}
		}), "no mount namespace"},
		"namespaces unknown": {with(func(c *Container) { c.Namespaces = nil }), "did not report the container's Linux namespaces"},
		"plugin's mount is named": {with(func(c *Container) {
			c.Mounts = append(c.Mounts, Mount{Type: "bind", Source: "/run/nri", Destination: "/n", Plugin: "10-injector"})
		}), "(added by NRI plugin 10-injector) reaches"},
		"plugin cannot use the CRI's own files": {with(func(c *Container) {
			c.Mounts = append(c.Mounts, Mount{Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + podID + "/hosts", Destination: "/etc/hosts", Plugin: "10-x"})
		}), "containerd's root directory"},
	} {
		t.Run(name, func(t *testing.T) {
			v, refused := g.Check(tc.c)
			if tc.want == "" {
				if refused {
					t.Fatalf("Check = refused: %s; want allowed", v.Reason)
				}
				return
			}
			if !refused {
				t.Fatalf("Check = allowed; want refused with %q", tc.want)
			}
			if !strings.Contains(v.Reason, tc.want) {
				t.Errorf("reason = %q; want it to contain %q", v.Reason, tc.want)
			}
			if v.Decision != policy.Deny || v.Kind != policy.RuleNodeIntegrity || v.Digest != mfDigest {
				t.Errorf("verdict = %+v; want deny, kind node-integrity, digest %s", v, mfDigest)
			}
		})
	}
}

func TestConfiguredPaths(t *testing.T) {
	g := New(Config{NRISocket: "/srv/nri/sock", ContainerdSocket: "/srv/ctrd/s/containerd.sock", ContainerdRoot: "/data/ctrd", ContainerdState: "/srv/ctrd",
		StateDir: "/data/csig", Extra: []string{"/srv/keys/"}}, nil)
	for src, want := range map[string]string{
		"/srv/nri":       "the NRI socket's directory /srv/nri",
		"/srv/ctrd/s":    "the containerd socket's directory /srv/ctrd/s",
		"/data":          "containerd's root directory /data/ctrd",
		"/data/csig/x":   "nri-csig's state directory",
		"/srv/keys/a":    "a path the node config protects /srv/keys",
		"/run/nri":       "NRI's runtime directory",     // always
		"/etc/nri-csig/": "nri-csig's config directory", // default kept
		"/opt/nri":       "NRI's plugin tree",           // always
		"/srv/ctrd/io.containerd.grpc.v1.cri/sandboxes/other/shm": "containerd's state directory",
	} {
		v, refused := g.Check(with(hostPath(src, "/x")))
		if !refused || !strings.Contains(v.Reason, want) {
			t.Errorf("mount of %s: refused=%v %q; want a refusal naming %q", src, refused, v.Reason, want)
		}
	}
	// The CRI's own files follow the configured containerd directories.
	c := ordinary()
	for i := range c.Mounts {
		c.Mounts[i].Source = strings.Replace(strings.Replace(c.Mounts[i].Source, "/var/lib/containerd", "/data/ctrd", 1), "/run/containerd", "/srv/ctrd", 1)
	}
	if v, refused := g.Check(c); refused {
		t.Errorf("the CRI's own mounts under the configured directories were refused: %s", v.Reason)
	}
}

func TestAllow(t *testing.T) {
	g := New(Config{Allow: []Allow{
		{Namespace: "storage", Digests: []string{cfgDigest}, Paths: []string{"/var/run/containerd/containerd.sock"}},
		{Namespace: "monitoring", Digests: []string{mfDigest}, Paths: []string{"/"}, HostPID: true},
		{Namespace: "debug", Digests: []string{cfgDigest}, Privileged: true},
	}}, nil)
	in := func(ns string, mutate func(*Container)) Container {
		c := with(mutate)
		c.Namespace = ns
		return c
	}
	for name, tc := range map[string]struct {
		c       Container
		refused bool
	}{
		"allowed path, namespace and config digest": {in("storage", hostPath("/run/containerd/containerd.sock", "/s")), false},
		"allowed path, other namespace":             {in("payments", hostPath("/run/containerd/containerd.sock", "/s")), true},
		"allowed path and namespace, other image": {with(func(c *Container) {
			*c = in("storage", hostPath("/run/containerd/containerd.sock", "/s"))
			c.ConfigDigest, c.ImageDigest = "sha256:other", "sha256:other2"
		}), true},
		"allowed namespace and image, other path":  {in("storage", hostPath("/run/nri", "/n")), true},
		"allowed namespace and image, parent path": {in("storage", hostPath("/run/containerd", "/n")), true},
		"manifest digest, root, host PID": {in("monitoring", func(c *Container) {
			hostPath("/", "/host")(c)
			c.PodNamespaces = []string{"mount"}
		}), false},
		"root allowed, privileged not": {in("monitoring", func(c *Container) {
			c.Mounts[2].Options = nil
		}), true},
		"privileged allowed": {in("debug", func(c *Container) {
			c.Mounts[2].Options = nil
			c.Devices = []Device{{Path: "/dev/sda", Type: "b"}}
		}), false},
		"privileged allowed, paths not": {in("debug", hostPath("/run/nri", "/n")), true},
	} {
		_, refused := g.Check(tc.c)
		if refused != tc.refused {
			t.Errorf("%s: refused = %v, want %v", name, refused, tc.refused)
		}
	}
}

func TestSymlinks(t *testing.T) {
	dir := t.TempDir()
	protectedDir := filepath.Join(dir, "nri")
	os.Mkdir(protectedDir, 0o755)
	os.Symlink(protectedDir, filepath.Join(dir, "innocent"))
	os.Symlink(dir, filepath.Join(dir, "up"))
	g := New(Config{NRISocket: filepath.Join(protectedDir, "nri.sock")}, HostResolver)
	for src, refused := range map[string]bool{
		filepath.Join(dir, "innocent"):                   true,
		filepath.Join(dir, "innocent", "x", "y"):         true, // missing below a symlink: the CRI creates it there
		filepath.Join(dir, "up", "nri"):                  true,
		filepath.Join(dir, "up", "other"):                false,
		filepath.Join(dir, "missing", "a", "b"):          false,
		filepath.Join(dir, "up", "missing", "..", "nri"): true,
	} {
		v, got := g.Check(with(hostPath(src, "/x")))
		if got != refused {
			t.Errorf("mount of %s: refused = %v (%s), want %v", src, got, v.Reason, refused)
		}
		if got && strings.Contains(src, "innocent") && !strings.Contains(v.Reason, "a symlink to "+protectedDir) {
			t.Errorf("reason %q does not say where the symlink leads", v.Reason)
		}
	}
	// A resolver that cannot tell refuses (fail closed).
	g = New(Config{}, func(string) (string, error) { return "", errors.New("permission denied") })
	if v, refused := g.Check(with(hostPath("/srv/data", "/d"))); !refused || !strings.Contains(v.Reason, "cannot be resolved") {
		t.Errorf("unresolvable source: refused=%v %q; want a refusal", refused, v.Reason)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"/var/run/nri/": "/run/nri", "/var/run": "/run", "/var/running": "/var/running", "run/nri": "/run/nri",
		"/../../etc": "/etc", "/": "/", "": "/", "/var//run/../run/nri": "/run/nri",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	g := New(Config{Extra: []string{"/a", "/b", "/c"}}, nil)
	c := ordinary()
	for b.Loop() {
		g.Check(c)
	}
}
