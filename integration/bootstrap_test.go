//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// syncNS is the namespace of the Kubernetes DaemonSet (packaging/kubernetes):
// its allow list holds only the DaemonSet image's digest.
const syncNS = "nri-csig-system"

// The bootstrap order on a node whose containerd requires nri-csig through
// the packaged drop-in (packaging/containerd/50-nri-csig.toml, pulled in by
// "imports"), with no tolerate-missing annotation:
//  1. nri-csig absent: every container is refused, also the DaemonSet's and
//     also with any "tolerate" annotation a pod might try. Had the daemon
//     been a pod, the node could never start it: the deadlock.
//  2. nri-csig started the way systemd starts nri-csig.service (its
//     ExecStart and EnvironmentFile, NOTIFY_SOCKET, WATCHDOG_USEC): it sends
//     READY=1 only once registered with NRI, and the unit orders kubelet after
//     that, so the first container created after READY=1 is judged (allowed),
//     while an image its namespace does not allow is refused by nri-csig.
//  3. nri-csig stopped (STOPPING=1): containers are refused again (fail-closed).
func TestBootstrapOrder(t *testing.T) {
	dropIn, err := filepath.Abs("../packaging/containerd/50-nri-csig.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testbed.StartContainerd(env.Tools, testbed.ContainerdOptions{
		RegistryHost: env.Registry.Host, SandboxImage: env.Pause.Ref, Imports: []string{dropIn},
	})
	if err != nil {
		t.Fatalf("containerd with the packaged drop-in: %v", err)
	}
	t.Cleanup(func() { c.Close() })

	// The main config leaves the default validator off; the drop-in turns it on.
	dump, err := c.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	validator := tomlSection(dump, "[plugins.'io.containerd.nri.v1.nri'.default_validator]")
	for _, want := range []string{"enable = true", "required_plugins = ['nri-csig']"} {
		if !strings.Contains(validator, want) {
			t.Errorf("containerd config dump with the drop-in: default_validator lacks %q:\n%s", want, validator)
		}
	}
	if strings.Contains(validator, "tolerate_missing_plugins_annotation = '") && !strings.Contains(validator, "tolerate_missing_plugins_annotation = ''") {
		t.Errorf("a tolerate-missing annotation is configured:\n%s", validator)
	}
	noImport := filepath.Join(c.Dir, "no-import.toml")
	b, _ := os.ReadFile(c.ConfigPath())
	os.WriteFile(noImport, []byte(strings.Replace(string(b), "imports = ['"+dropIn+"']", "imports = []", 1)), 0o644)
	out, err := exec.Command(env.Tools.Containerd, "--config", noImport, "config", "dump").Output()
	if err != nil {
		t.Fatalf("config dump without the drop-in: %v", err)
	}
	if v := tomlSection(string(out), "[plugins.'io.containerd.nri.v1.nri'.default_validator]"); !strings.Contains(v, "enable = false") {
		t.Errorf("control: without the drop-in the validator should be off:\n%s", v)
	}

	for _, img := range []testbed.Image{env.Pause, env.Trusted, env.Untrusted} {
		if _, err := c.Pull(img.Ref); err != nil {
			t.Fatalf("pull %s: %v", img.Ref, err)
		}
	}
	// The DaemonSet image is played by env.Trusted; the node config mirrors
	// packaging/kubernetes/nri-csig.yaml.
	dir := t.TempDir() // writable for the daemon: its log and state (StateDirectory=)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	config := filepath.Join(dir, "config.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: it\nstateDir: %s\nallowlists:\n  - namespace: %s\n    digests:\n      - %s\n", state, syncNS, env.Trusted.Digest)), 0o644)

	// 1. nri-csig absent.
	tolerate := map[string]string{
		"tolerate-missing-plugins.noderesource.dev": "true",
		"noderesource.dev/tolerate-missing-plugins": "true",
		"nri.io/tolerate-missing-plugins":           "true",
	}
	pod, err := c.RunPodWithAnnotations("nri-csig-sync-x1", syncNS, tolerate)
	if err != nil {
		t.Fatalf("run pod: %v", err)
	}
	defer pod.Remove()
	_, err = pod.Create(testbed.ContainerSpec{Name: "sync", Image: env.Trusted.Ref})
	if err == nil || !strings.Contains(err.Error(), `required plugin \"nri-csig\" not present`) {
		t.Fatalf("nri-csig absent: the DaemonSet's container got %v; want the default validator's refusal", err)
	}

	// 2. Started as nri-csig.service starts it.
	argv, envFile := unitCommand(t, "../systemd/nri-csig.service")
	logPath := filepath.Join(dir, "unit.log")
	if envFile != "-/etc/default/nri-csig" {
		t.Fatalf("EnvironmentFile = %q; the test supplies /etc/default/nri-csig's NRI_CSIG_ARGS", envFile)
	}
	// What an operator would put in /etc/default/nri-csig on this node
	// (later flags win over the unit's).
	localArgs := []string{"--config", config, "--nri-socket", c.NRISocket, "--containerd-address", c.Socket,
		"--metrics-address", "127.0.0.1:0", "--audit", "json", "--log-file", logPath}
	argv = expandArgs(argv, map[string][]string{"$NRI_CSIG_ARGS": localArgs})
	if argv[0] != "/usr/bin/nri-csigd" || argv[1] != "run" {
		t.Fatalf("ExecStart = %q; want /usr/bin/nri-csigd run ...", argv)
	}
	argv[0] = env.Tools.NRICsigd
	t.Logf("ExecStart as systemd would run it here: %s", strings.Join(argv, " "))

	// The unit's sandbox, approximated: the root file system read-only except
	// the state and log folder (ProtectSystem=strict, StateDirectory=), no
	// capabilities at all (CapabilityBoundingSet=), NoNewPrivileges=yes. The
	// containerd, NRI and notify sockets stay on the read-only part.
	notify := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	sandbox := filepath.Join(t.TempDir(), "sandbox.sh")
	os.WriteFile(sandbox, []byte(`set -e
w=$1; shift
mount --make-rprivate /
mount --bind "$w" "$w"
mount -o bind,remount,ro /
exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
`), 0o755)
	argv = append([]string{"unshare", "--mount", "--", "sh", sandbox, dir}, argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path, fmt.Sprintf("WATCHDOG_USEC=%d", unitWatchdog(t).Microseconds()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	if err := notify.wait("READY=1", 20*time.Second, exited); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, readTail(logPath))
	}
	ready := time.Since(start)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), `"msg":"synchronized with runtime"`) {
		t.Errorf("READY=1 before nri-csig synchronized with containerd's NRI:\n%s", b)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the daemon is not sandboxed as the unit says (%q missing):\n%s", want, status)
		}
	}
	mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", cmd.Process.Pid))
	rootRO := false
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == "/" && strings.HasPrefix(f[5], "ro,") {
			rootRO = true
		}
	}
	if !rootRO {
		t.Errorf("the daemon's root file system is not read-only:\n%s", mounts)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "probe"), nil, 0o644); err != nil {
		t.Fatalf("control: the test itself must be able to write outside the sandbox: %v", err)
	}
	// kubelet (After=nri-csig.service through Before=kubelet.service) starts now.
	id, err := pod.Run(testbed.ContainerSpec{Name: "sync", Image: env.Trusted.Ref})
	if err != nil {
		t.Fatalf("the first container after READY=1 was refused: %v", err)
	}
	t.Logf("READY=1 %s after start; then the DaemonSet's container %s was created and started", ready.Round(time.Millisecond), id[:12])
	_, err = pod.Create(testbed.ContainerSpec{Name: "intruder", Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, "intruder", err, env.Untrusted.Digest)
	if err := notify.wait("WATCHDOG=1", 5*time.Second, exited); err != nil {
		t.Errorf("no watchdog ping with WATCHDOG_USEC set: %v", err)
	}

	// 3. Stopped (as systemctl stop does): fail-closed again.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := notify.wait("STOPPING=1", 10*time.Second, nil); err != nil {
		t.Errorf("%v", err)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("nri-csig did not exit within TimeoutStopSec of SIGTERM")
	}
	exited <- nil // for the deferred cleanup
	_, err = pod.Create(testbed.ContainerSpec{Name: "sync-after-stop", Image: env.Trusted.Ref})
	if err == nil {
		t.Fatalf("a container was created while nri-csig was stopped; want it refused (fail-closed)")
	}
	t.Logf("after stop: %s", reasonOf(err))
}

// The pre-installed variant of the drop-in loads in containerd and points it
// at the packaged wrapper's location.
func TestPreInstalledDropInLoads(t *testing.T) {
	dropIn, err := filepath.Abs("../packaging/containerd/preinstalled/50-nri-csig.toml")
	if err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(main, []byte("version = 3\nimports = ['"+dropIn+"']\n"), 0o644)
	out, err := exec.Command(env.Tools.Containerd, "--config", main, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	nri := tomlSection(string(out), "[plugins.'io.containerd.nri.v1.nri']")
	for _, want := range []string{"disable = false", "plugin_path = '/opt/nri/plugins'", "plugin_config_path = '/etc/nri/conf.d'"} {
		if !strings.Contains(nri, want) {
			t.Errorf("merged NRI config lacks %q:\n%s", want, nri)
		}
	}
	v := tomlSection(string(out), "[plugins.'io.containerd.nri.v1.nri'.default_validator]")
	for _, want := range []string{"enable = true", "required_plugins = ['nri-csig']"} {
		if !strings.Contains(v, want) {
			t.Errorf("merged default_validator lacks %q:\n%s", want, v)
		}
	}
}

// tomlSection returns the lines of a TOML table up to the next table header.
func tomlSection(doc, header string) string {
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") {
			if in {
				break
			}
			in = l == header
			continue
		}
		if in && l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// unitLines returns the values of key in a unit's [Service] section.
func unitValue(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s has no %s=", path, key)
	return ""
}

// unitCommand returns the unit's ExecStart split into words and its EnvironmentFile.
func unitCommand(t *testing.T, path string) ([]string, string) {
	t.Helper()
	return strings.Fields(unitValue(t, path, "ExecStart")), unitValue(t, path, "EnvironmentFile")
}

func unitWatchdog(t *testing.T) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(unitValue(t, "../systemd/nri-csig.service", "WatchdogSec"))
	if err != nil {
		t.Fatalf("WatchdogSec: %v", err)
	}
	return d
}

// expandArgs replaces unquoted $VAR words by their words, as systemd does.
func expandArgs(argv []string, vars map[string][]string) []string {
	var out []string
	for _, a := range argv {
		if v, ok := vars[a]; ok {
			out = append(out, v...)
			continue
		}
		out = append(out, a)
	}
	return out
}

// notifySocket receives sd_notify datagrams, as systemd does for Type=notify.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			for _, m := range strings.Split(string(buf[:k]), "\n") {
				n.msgs <- m
			}
		}
	}()
	return n
}

// wait waits for the message want, failing early when the process exits.
func (n *notifySocket) wait(want string, deadline time.Duration, exited chan error) error {
	timeout := time.After(deadline)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				return fmt.Errorf("notify socket closed before %s", want)
			}
			if m == want {
				return nil
			}
		case err := <-exited:
			exited <- err
			return fmt.Errorf("nri-csig exited before sending %s: %v", want, err)
		case <-timeout:
			return fmt.Errorf("no %s on NOTIFY_SOCKET within %s", want, deadline)
		}
	}
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
