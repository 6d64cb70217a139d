//go:build integration

package integration

import (
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

// installPreInstalled puts the packaged pre-installed variant on n's
// containerd, as docs/OPERATIONS.md installs it, with the testbed's paths in
// place of the host's: the drop-in packaging/containerd/preinstalled/ (merged
// after the packaged 50-nri-csig.toml), the wrapper packaging/nri/50-nri-csig
// in plugin_path and its conf.d file. It returns the daemon's log file (the
// wrapper's PID file is in <dir>/run-nri-csig/preinstalled.pid).
func (n *guardNode) installPreInstalled(t *testing.T, dropIn string) string {
	t.Helper()
	replace := func(path string, pairs ...string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				t.Fatalf("%s no longer contains %q; update this test with it", path, pairs[i])
			}
			s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
		}
		return s
	}
	confDir := filepath.Join(n.c.Dir, "nri", "conf.d")
	toml := replace("../packaging/containerd/preinstalled/50-nri-csig.toml",
		"'/opt/nri/plugins'", "'"+n.c.PluginDir+"'", "'/etc/nri/conf.d'", "'"+confDir+"'")
	if err := os.WriteFile(dropIn, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(n.c.Dir, "preinstalled-nri-csig.log")
	wrapper := replace("../packaging/nri/50-nri-csig",
		"/usr/bin/nri-csigd", n.c.Tools.NRICsigd, "/etc/nri-csig/config.yaml", n.config, "/var/log/nri-csig.log", logPath,
		"/run/nri-csig", filepath.Join(n.c.Dir, "run-nri-csig"),
		"--audit journald", "--audit json --containerd-address "+n.c.Socket+" --metrics-address 127.0.0.1:0")
	if err := os.WriteFile(filepath.Join(n.c.PluginDir, "50-nri-csig"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile("../packaging/nri/50-nri-csig.conf")
	os.WriteFile(filepath.Join(confDir, "50-nri-csig.conf"), conf, 0o644)
	return logPath
}

// waitLog waits until path contains s.
func waitLog(t *testing.T, path, s string, deadline time.Duration) {
	t.Helper()
	err := testbed.Poll(deadline, func() error {
		if b, _ := os.ReadFile(path); !strings.Contains(string(b), s) {
			return fmt.Errorf("%s has no %q yet:\n%s", path, s, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tryImpostor runs the test plugin as "nri-csig" with index idx against the
// NRI socket; it returns nil once the impostor registered, or why it could not.
func tryImpostor(t *testing.T, n *guardNode, idx string) (stop func(), err error) {
	t.Helper()
	cmd := exec.Command(n.plugin, "-socket", n.c.NRISocket, "-name", testbed.PluginName, "-idx", idx, "-mode", "impostor")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	err = testbed.Poll(5*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			return testbed.Permanent(fmt.Errorf("impostor exited: %v: %s", err, strings.TrimSpace(out.String())))
		default:
		}
		if !strings.Contains(out.String(), "synchronized") {
			return fmt.Errorf("impostor not registered yet")
		}
		return nil
	})
	return func() { cmd.Process.Kill(); <-exited }, err
}

// Issue 9 item 2, in the recommended mode (docs/OPERATIONS.md): nri-csig
// pre-installed (containerd launches it from plugin_path) and
// disable_connections = true, from the packaged drop-ins and wrapper.
// containerd then opens no NRI socket at all, so no process can register as
// nri-csig: not while the daemon runs, and not while it is down (killed, as
// by the OOM killer). During the outage every container is refused — an
// unsigned one in an enforced namespace too — until containerd restarts,
// which relaunches the daemon.
func TestImpostorCannotSquatInRecommendedMode(t *testing.T) {
	base, err := filepath.Abs("../packaging/containerd/50-nri-csig.toml")
	if err != nil {
		t.Fatal(err)
	}
	dropIn := filepath.Join(t.TempDir(), "51-nri-csig-preinstalled.toml")
	os.WriteFile(dropIn, []byte("version = 3\n"), 0o644) // filled in below, once the testbed's paths are known
	n := startGuardContainerd(t, base, dropIn)
	n.writeConfig(t, "")
	logPath := n.installPreInstalled(t, dropIn)
	if err := n.c.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, `"msg":"synchronized with runtime"`, 15*time.Second)
	dump, err := n.c.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	nri := tomlSection(dump, "[plugins.'io.containerd.nri.v1.nri']")
	for _, want := range []string{"disable_connections = true", "plugin_path = '" + n.c.PluginDir + "'"} {
		if !strings.Contains(nri, want) {
			t.Fatalf("containerd runs without %q:\n%s", want, nri)
		}
	}
	// (A socket file may be left from an earlier start; nobody listens on it.)
	if conn, err := net.Dial("unix", n.c.NRISocket); err == nil {
		conn.Close()
		t.Errorf("something accepts connections on the NRI socket %s with disable_connections = true", n.c.NRISocket)
	}

	pod := n.pod(t, "squat", enforcedNS, podOptions{})
	if _, err := pod.create(t, "trusted", env.Trusted.Ref, ctrOptions{}); err != nil {
		t.Fatalf("the pre-installed daemon refused the allow-listed image: %v", err)
	}
	_, err = pod.create(t, "unsigned", env.Untrusted.Ref, ctrOptions{})
	refusedBy(t, "unsigned, daemon up", err, "not on the allow list")
	if stop, err := tryImpostor(t, n, "99"); err == nil {
		stop()
		t.Fatalf("an impostor registered as nri-csig while the daemon runs")
	} else {
		t.Logf("impostor while the daemon runs: %v", err)
	}

	// The packaged check (nri-csig-preinstalled-check.timer) leaves a live
	// daemon alone.
	pidfile := filepath.Join(n.c.Dir, "run-nri-csig", "preinstalled.pid")
	if calls := runCheck(t, pidfile); calls != "is-active --quiet containerd.service" {
		t.Errorf("check.sh with the daemon alive called systemctl %q; want no restart", calls)
	}

	// The outage: the daemon dies (by the PID its wrapper recorded); containerd
	// does not relaunch it.
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the wrapper recorded no PID: %v", err)
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "nri-csigd" {
		t.Fatalf("PID %d in %s is %q, not nri-csigd", pid, pidfile, comm)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for _, idx := range []string{"00", "50", "99"} { // its own index too
		stop, err := tryImpostor(t, n, idx)
		if err == nil {
			defer stop()
			t.Errorf("an impostor registered as %s-nri-csig while the daemon was down", idx)
		} else {
			t.Logf("impostor %s-nri-csig while the daemon is down: %v", idx, err)
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("unsigned-outage-%d", i)
		if _, err := pod.create(t, name, env.Untrusted.Ref, ctrOptions{}); err == nil {
			t.Fatalf("%s: an unsigned container was created in %s while nri-csig was down", name, enforcedNS)
		} else {
			t.Logf("%s refused: %s", name, reasonOf(err))
		}
	}
	_, err = pod.create(t, "trusted-outage", env.Trusted.Ref, ctrOptions{})
	if err == nil {
		t.Errorf("a container was created while nri-csig was down; the outage should refuse every container")
	} else if msg := reasonOf(err); !strings.Contains(msg, `required plugin "nri-csig" not present`) {
		t.Errorf("outage refusal = %s; want the default validator's required-plugin refusal", msg)
	}
	names, _ := n.c.Crictl("ps", "-a", "-o", "json")
	if strings.Contains(names, "unsigned") {
		t.Errorf("an unsigned container exists:\n%s", names)
	}

	// Recovery: the check sees the dead (or zombie) daemon and restarts
	// containerd, which relaunches it.
	if calls := runCheck(t, pidfile); calls != "is-active --quiet containerd.service|restart containerd.service" {
		t.Errorf("check.sh with the daemon dead called systemctl %q; want a containerd restart", calls)
	}
	start := time.Now()
	if err := n.c.Restart(); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	err = testbed.Poll(20*time.Second, func() error {
		if _, err := pod.create(t, fmt.Sprintf("trusted-recovered-%d", time.Now().UnixNano()), env.Trusted.Ref, ctrOptions{}); err != nil {
			return err
		}
		recovered = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatalf("after restarting containerd the allow-listed image is still refused: %v", err)
	}
	_, err = pod.create(t, "unsigned-recovered", env.Untrusted.Ref, ctrOptions{})
	refusedBy(t, "unsigned after recovery", err, "not on the allow list")
	t.Logf("containerd restart to the first container created: %s", recovered.Round(time.Millisecond))
}

// The same attack in the default external mode (disable_connections =
// false): while the daemon is down, anything that can reach the NRI socket
// registers as nri-csig and satisfies required_plugins, and an unsigned
// container is created in an enforced namespace. This is why the recommended
// mode is the pre-installed one, and why the guard refuses every pod that
// could reach the socket (TestGuardRefusesPodsReachingTheMachinery).
func TestImpostorSquatsInExternalMode(t *testing.T) {
	n := startGuardContainerd(t)
	n.writeConfig(t, "")
	n.startDaemon(t)
	pod := n.pod(t, "squat-external", enforcedNS, podOptions{})
	_, err := pod.create(t, "unsigned", env.Untrusted.Ref, ctrOptions{})
	refusedBy(t, "unsigned, daemon up", err, "not on the allow list")
	n.d.Kill()
	stop, err := tryImpostor(t, n, "99")
	if err != nil {
		t.Fatalf("control: the impostor could not register in external mode: %v", err)
	}
	defer stop()
	var id string
	err = testbed.Poll(10*time.Second, func() (err error) {
		// The first create after the kill may still meet the dead plugin.
		id, err = pod.create(t, fmt.Sprintf("unsigned-squat-%d", time.Now().UnixNano()), env.Untrusted.Ref, ctrOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("in external mode with an impostor registered, the unsigned container was still refused: %v (if NRI now authenticates plugins, update docs/THREAT-MODEL.md)", err)
	}
	t.Logf("external mode, daemon down, impostor registered as nri-csig: unsigned container %s created in %s", id[:12], enforcedNS)
}

// runCheck runs the packaged packaging/nri/check.sh on pidfile with a
// systemctl that only records its calls (containerd "active"), and returns them.
func runCheck(t *testing.T, pidfile string) string {
	t.Helper()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	systemctl := filepath.Join(dir, "systemctl")
	os.WriteFile(systemctl, []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755)
	cmd := exec.Command("sh", "../packaging/nri/check.sh")
	cmd.Env = append(os.Environ(), "NRI_CSIG_PIDFILE="+pidfile, "NRI_CSIG_TEST_SYSTEMCTL="+systemctl)
	out, _ := cmd.CombinedOutput()
	t.Logf("check.sh: %s", strings.TrimSpace(string(out)))
	os.Remove(filepath.Join(filepath.Dir(pidfile), "check-restarted"))
	b, _ := os.ReadFile(calls)
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "|")
}
