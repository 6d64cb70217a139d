//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// The tests of this file run their own containerd and daemon, with nri-csigd
// built from this work tree by the test itself (the testbed's copy lives in a
// shared tool cache), so that reloads and plugin registrations here never
// touch the suite's shared containerd.

var ownBuild struct {
	once              sync.Once
	nriCsigd, testPlg string
	err               error
}

// guardTools returns the testbed's tools with nri-csigd and the test plugin
// (integration/testplugin) built now from this work tree.
func guardTools(t *testing.T) (*testbed.Tools, string) {
	t.Helper()
	ownBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "nri-csig-guard-bin-")
		if err != nil {
			ownBuild.err = err
			return
		}
		ownBuild.nriCsigd, ownBuild.testPlg = filepath.Join(dir, "nri-csigd"), filepath.Join(dir, "testplugin")
		for out, pkg := range map[string]string{ownBuild.nriCsigd: "../cmd/nri-csig", ownBuild.testPlg: "./testplugin"} {
			cmd := exec.Command("go", "build", "-tags", "nodeonly", "-o", out, pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				ownBuild.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if ownBuild.err != nil {
		t.Fatal(ownBuild.err)
	}
	tools := *env.Tools
	tools.NRICsigd = ownBuild.nriCsigd
	return &tools, ownBuild.testPlg
}

// guardNode is a containerd requiring nri-csig, with its images pulled.
type guardNode struct {
	c      *testbed.Containerd
	d      *testbed.Daemon
	config string
	plugin string // the test plugin's binary
}

// startGuardContainerd starts containerd (imports: drop-ins) and pulls the
// test images; the daemon is started separately.
func startGuardContainerd(t *testing.T, imports ...string) *guardNode {
	t.Helper()
	tools, plg := guardTools(t)
	opts := testbed.ContainerdOptions{RegistryHost: env.Registry.Host, SandboxImage: env.Pause.Ref, Imports: imports}
	if len(imports) == 0 {
		opts.RequiredPlugins = []string{testbed.PluginName}
	}
	c, err := testbed.StartContainerd(tools, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log tail:\n%s", c.LogTail(30))
		}
		c.Close()
	})
	for _, img := range []testbed.Image{env.Pause, env.Trusted, env.Untrusted} {
		if _, err := c.Pull(img.Ref); err != nil {
			t.Fatalf("pull %s: %v", img.Ref, err)
		}
	}
	return &guardNode{c: c, config: filepath.Join(c.Dir, "guard-node.yaml"), plugin: plg}
}

// writeConfig writes the node config: the trusted digest allow-listed in
// enforcedNS, plus extra (YAML at the top level).
func (n *guardNode) writeConfig(t *testing.T, extra string) {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: it\nstateDir: %s\nallowlists:\n  - namespace: %s\n    digests: [%s]\n%s",
		filepath.Join(n.c.Dir, "csig-state"), enforcedNS, env.Trusted.Digest, extra)
	if err := os.WriteFile(n.config, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *guardNode) startDaemon(t *testing.T) {
	t.Helper()
	d, err := n.c.StartDaemon(n.config)
	if err != nil {
		t.Fatal(err)
	}
	n.d = d
	t.Cleanup(func() { d.Stop() })
}

// reload rewrites the node config and waits until the daemon accepted it.
func (n *guardNode) reload(t *testing.T, extra string) {
	t.Helper()
	before := len(n.d.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"}))
	n.writeConfig(t, extra)
	n.d.Signal(syscall.SIGHUP)
	err := testbed.Poll(10*time.Second, func() error {
		if len(n.d.AuditRecords(map[string]string{"event": "reload", "decision": "accepted"})) == before {
			return fmt.Errorf("node config reload not accepted; daemon log:\n%s", n.d.Log())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawPod is a pod whose CRI config the tests choose (host PID, privileged).
type rawPod struct {
	id, spec, name, namespace string
	c                         *testbed.Containerd
}

type podOptions struct{ hostPID, privileged bool }

type ctrOptions struct {
	mounts      [][2]string // host path, container path
	privileged  bool
	hostPID     bool
	annotations map[string]string
}

var rawSeq int

func (n *guardNode) pod(t *testing.T, name, namespace string, o podOptions) *rawPod {
	t.Helper()
	rawSeq++
	dir := filepath.Join(n.c.Dir, "pods", fmt.Sprintf("%s-%d", name, rawSeq))
	os.MkdirAll(dir, 0o755)
	nsOpts := map[string]any{"network": 2} // host network: no CNI
	if o.hostPID {
		nsOpts["pid"] = 2
	}
	spec := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": namespace, "uid": fmt.Sprintf("%s-%d", name, rawSeq)},
		"log_directory": dir,
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": nsOpts, "privileged": o.privileged}},
	}
	path := filepath.Join(dir, "pod.json")
	writeJSONFile(t, path, spec)
	id, err := n.c.Crictl("runp", path)
	if err != nil {
		t.Fatalf("runp %s/%s: %v", namespace, name, err)
	}
	p := &rawPod{id: id, spec: path, name: name, namespace: namespace, c: n.c}
	t.Cleanup(func() { n.c.Crictl("rmp", "--force", id) })
	return p
}

func (p *rawPod) create(t *testing.T, name, image string, o ctrOptions) (string, error) {
	t.Helper()
	rawSeq++
	var mounts []map[string]any
	for _, m := range o.mounts {
		mounts = append(mounts, map[string]any{"host_path": m[0], "container_path": m[1], "readonly": true})
	}
	sc := map[string]any{"privileged": o.privileged}
	if o.hostPID {
		sc["namespace_options"] = map[string]any{"network": 2, "pid": 2}
	}
	spec := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/sh", "-c", "sleep 3600"},
		"log_path": name + ".log",
		"mounts":   mounts,
		"linux":    map[string]any{"security_context": sc},
	}
	if o.annotations != nil {
		spec["annotations"] = o.annotations
	}
	path := filepath.Join(filepath.Dir(p.spec), fmt.Sprintf("ctr-%s-%d.json", name, rawSeq))
	writeJSONFile(t, path, spec)
	return p.c.Crictl("create", p.id, path, p.spec)
}

// refusedBy checks err is nri-csig's refusal containing every want.
func refusedBy(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: the container was created; want it refused", what)
		return
	}
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	for _, w := range append([]string{"nri-csig: refused container"}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: refusal lacks %q:\n%s", what, w, msg)
		}
	}
}

// The guard refuses, in every namespace (one covered by an allow list that
// admits the image, one no rule covers, kube-system), a pod whose container
// mounts the NRI socket, its directory, the containerd socket, a parent of
// them, or a symlink leading there, and privileged and host-PID containers —
// with the trusted image, so nothing but the guard refuses them. The same pod
// with an innocent hostPath runs, in each namespace.
func TestGuardRefusesPodsReachingTheMachinery(t *testing.T) {
	n := startGuardContainerd(t)
	n.writeConfig(t, "")
	n.startDaemon(t)

	nriDir := filepath.Dir(n.c.NRISocket)
	links := t.TempDir()
	if err := os.Symlink(nriDir, filepath.Join(links, "innocent")); err != nil {
		t.Fatal(err)
	}
	harmless := t.TempDir()
	cases := []struct{ name, source, want string }{
		{"nri-socket", n.c.NRISocket, "reaches the NRI socket " + n.c.NRISocket},
		{"nri-socket-dir", nriDir, "reaches"},
		{"nri-default-dir", "/var/run/nri", "reaches NRI's runtime directory /run/nri"},
		{"nri-dotdot", filepath.Join(n.c.Dir, "pods") + "/../state/", "reaches"},
		{"containerd-socket", n.c.Socket, "reaches the containerd socket " + n.c.Socket},
		{"containerd-parent", n.c.Dir, "reaches"},
		{"host-root", "/", "reaches"},
		// The CRI resolves a hostPath's symlinks itself before NRI sees it.
		{"symlink", filepath.Join(links, "innocent"), "the host path " + nriDir + " mounted at /host reaches"},
	}
	for _, ns := range []string{enforcedNS, uncoveredNS, "kube-system"} {
		pod := n.pod(t, "guard-"+ns, ns, podOptions{})
		for _, tc := range cases {
			_, err := pod.create(t, tc.name, env.Trusted.Ref, ctrOptions{mounts: [][2]string{{tc.source, "/host"}}})
			refusedBy(t, ns+" "+tc.name, err, "node integrity", tc.want, "guard.allow")
		}
		if _, err := pod.create(t, "harmless", env.Trusted.Ref, ctrOptions{mounts: [][2]string{{harmless, "/data"}}}); err != nil {
			t.Errorf("%s: a container with an innocent hostPath was refused: %v", ns, err)
		}
	}
	priv := n.pod(t, "guard-priv", uncoveredNS, podOptions{privileged: true})
	_, err := priv.create(t, "privileged", env.Trusted.Ref, ctrOptions{privileged: true})
	refusedBy(t, "privileged", err, "node integrity", "it is privileged")
	if _, err := priv.create(t, "unprivileged", env.Trusted.Ref, ctrOptions{}); err != nil {
		t.Errorf("an unprivileged container in a privileged-capable pod was refused: %v", err)
	}
	hostPID := n.pod(t, "guard-hostpid", uncoveredNS, podOptions{hostPID: true})
	_, err = hostPID.create(t, "hostpid", env.Trusted.Ref, ctrOptions{hostPID: true})
	refusedBy(t, "host PID", err, "node integrity", "host's PID namespace")

	rec := n.d.WaitRecord(t, map[string]string{"event": "create", "decision": "deny", "rule": "node-integrity", "container": "containerd-socket", "namespace": "kube-system"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), n.c.Socket) {
		t.Errorf("audit record of the refusal does not name the socket: %v", rec)
	}
	t.Logf("%d refusals by the guard recorded", len(n.d.AuditRecords(map[string]string{"rule": "node-integrity", "decision": "deny"})))
}

// Only an entry naming the namespace AND the image digest AND the path lets a
// container reach the machinery; each alone does not. Once the entry is gone,
// the running container is reported (and would be stopped with
// --stop-untrusted).
func TestGuardAllowEntry(t *testing.T) {
	n := startGuardContainerd(t)
	n.writeConfig(t, fmt.Sprintf("guard:\n  allow:\n    - namespace: csig-storage\n      digests: [%s]\n      paths: [%s]\n", env.Trusted.ConfigDigest, n.c.Socket))
	n.startDaemon(t)
	storage := n.pod(t, "storage", "csig-storage", podOptions{})
	if _, err := storage.create(t, "allowed", env.Trusted.Ref, ctrOptions{mounts: [][2]string{{n.c.Socket, "/run/containerd.sock"}}}); err != nil {
		t.Fatalf("the allowed namespace, image and path were refused: %v", err)
	}
	_, err := storage.create(t, "other-image", env.Untrusted.Ref, ctrOptions{mounts: [][2]string{{n.c.Socket, "/run/containerd.sock"}}})
	refusedBy(t, "other image", err, "node integrity", "the containerd socket")
	_, err = storage.create(t, "other-path", env.Trusted.Ref, ctrOptions{mounts: [][2]string{{n.c.NRISocket, "/nri.sock"}}})
	refusedBy(t, "other path", err, "node integrity", "the NRI socket")
	other := n.pod(t, "other", "csig-other", podOptions{})
	_, err = other.create(t, "other-namespace", env.Trusted.Ref, ctrOptions{mounts: [][2]string{{n.c.Socket, "/run/containerd.sock"}}})
	refusedBy(t, "other namespace", err, "node integrity", "the containerd socket")

	// Without the entry (node config reloaded), the container allowed before
	// is reported when running containers are judged again.
	n.reload(t, "")
	rec := n.d.WaitRecord(t, map[string]string{"event": "running", "decision": "deny", "rule": "node-integrity", "container": "allowed"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "the containerd socket") {
		t.Errorf("running record = %v; want it to name the containerd socket", rec)
	}
}

// A second, real NRI plugin (integration/testplugin, annotation-driven like
// NRI's device-injector) adds bind mounts to containers nri-csig allows:
// a harmless one is recorded with the plugin's name; one of the NRI socket's
// directory is refused by the guard; with guard.otherPlugins.mounts: refuse
// every added mount is refused.
func TestOtherPluginAdjustments(t *testing.T) {
	n := startGuardContainerd(t)
	n.writeConfig(t, "")
	n.startDaemon(t)
	injector := startTestPlugin(t, n.plugin, "-socket", n.c.NRISocket, "-name", "injector", "-idx", "10", "-mode", "adjust")
	defer injector()

	harmless := t.TempDir()
	pod := n.pod(t, "adjusted", enforcedNS, podOptions{})
	mount := func(src, dst string) ctrOptions {
		return ctrOptions{annotations: map[string]string{"test.nri-csig.io/mount": src + ":" + dst}}
	}
	id, err := pod.create(t, "adj-harmless", env.Trusted.Ref, mount(harmless, "/extra"))
	if err != nil {
		t.Fatalf("a trusted container with a harmless mount added by another plugin was refused: %v", err)
	}
	insp, _ := n.c.Crictl("inspect", id)
	if !strings.Contains(insp, harmless) {
		t.Errorf("control: the test plugin's mount is not in the created container:\n%s", insp)
	}
	rec := n.d.WaitRecord(t, map[string]string{"event": "adjust", "decision": "adjusted", "container": "adj-harmless"})
	if want := "10-injector added the mount " + harmless + " at /extra"; !strings.Contains(fmt.Sprint(rec["reason"]), want) {
		t.Errorf("adjust record = %v; want its reason to contain %q", rec, want)
	}

	nriDir := filepath.Dir(n.c.NRISocket)
	_, err = pod.create(t, "adj-nri", env.Trusted.Ref, mount(nriDir, "/nri"))
	refusedBy(t, "a plugin's bind mount of the NRI socket's directory", err, "node integrity", "mounted at /nri (added by NRI plugin 10-injector) reaches")

	// A plugin's mount source is not resolved by the CRI: the guard follows
	// the symlink itself.
	links := t.TempDir()
	os.Symlink(nriDir, filepath.Join(links, "innocent"))
	_, err = pod.create(t, "adj-symlink", env.Trusted.Ref, mount(filepath.Join(links, "innocent"), "/sneaky"))
	refusedBy(t, "a plugin's bind mount of a symlink to the NRI socket's directory", err, "node integrity", "(a symlink to "+nriDir+") mounted at /sneaky (added by NRI plugin 10-injector)")

	n.reload(t, "guard:\n  otherPlugins:\n    mounts: refuse\n")
	_, err = pod.create(t, "adj-refused", env.Trusted.Ref, mount(harmless, "/extra"))
	refusedBy(t, "otherPlugins.mounts: refuse", err, "plugin 10-injector added the mount "+harmless+" at /extra", "guard.otherPlugins")
	n.d.WaitRecord(t, map[string]string{"event": "create", "decision": "deny", "rule": "adjustment", "container": "adj-refused"})
	if _, err := pod.create(t, "not-adjusted", env.Trusted.Ref, ctrOptions{}); err != nil {
		t.Errorf("a container no plugin adjusted was refused under otherPlugins.mounts: refuse: %v", err)
	}
}

// startTestPlugin runs integration/testplugin and waits until it has
// registered with NRI; the returned func stops it.
func startTestPlugin(t *testing.T, bin string, args ...string) func() {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	synced := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "synchronized" {
				synced <- true
			}
		}
		close(synced)
	}()
	select {
	case ok := <-synced:
		if !ok {
			cmd.Wait()
			t.Fatalf("test plugin %v exited before registering: %s", args, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("test plugin %v did not register within 10s: %s", args, stderr.String())
	}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
