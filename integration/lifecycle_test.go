//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// restartDaemon replaces the package's daemon after a test stopped or killed it.
func restartDaemon(t *testing.T) {
	t.Helper()
	d, err := env.Containerd.StartDaemon(nodeConfig)
	if err != nil {
		t.Fatalf("starting nri-csig: %v", err)
	}
	daemon = d
}

// Containerd's default validator lists nri-csig in required_plugins: with the
// plugin absent since containerd started, no container may be created.
func TestPluginNeverStartedRefusesEverything(t *testing.T) {
	daemon.Stop()
	if err := env.Containerd.Restart(); err != nil {
		t.Fatalf("restarting containerd: %v", err)
	}
	pod := newPod(t, uncoveredNS)
	_, err := pod.Create(testbed.ContainerSpec{Name: "no-plugin", Image: env.Trusted.Ref})
	if err == nil || !strings.Contains(err.Error(), `required plugin \"nri-csig\" not present`) {
		t.Fatalf("creating a container with the required plugin absent: got %v, want the default validator's refusal", err)
	}

	restartDaemon(t)
	if _, err := pod.Create(testbed.ContainerSpec{Name: "plugin-back", Image: env.Trusted.Ref}); err != nil {
		t.Fatalf("the plugin is back but the container was refused: %v", err)
	}
	enforced := newPod(t, enforcedNS)
	_, err = enforced.Create(testbed.ContainerSpec{Name: "untrusted-after-start", Image: env.Untrusted.Ref})
	mustBeRefused(t, enforced, "untrusted-after-start", err, env.Untrusted.Digest)
}

// A plugin killed while containerd runs. CONTAINERD-LAB.md measured that
// containerd 2.4.2 (NRI v0.12.3) lets the first request after a kill through,
// with a plugin that refused in CreateContainer (fail-open on a closed
// connection). nri-csig refuses in ValidateContainerAdjustment, where a closed
// connection fails the request: the first creation is refused too
// ("validator plugin 50-nri-csig failed: ttrpc: closed"), and later ones by
// the default validator until the plugin is back.
func TestPluginKilledThenBack(t *testing.T) {
	pod := newPod(t, enforcedNS)
	daemon.Kill()

	_, first := pod.Create(testbed.ContainerSpec{Name: "first-after-kill", Image: env.Untrusted.Ref})
	if first == nil {
		t.Fatalf("the first untrusted container created after the plugin died was ALLOWED (the NRI gap of CONTAINERD-LAB.md)")
	}
	t.Logf("first creation after the kill: %s", reasonOf(first))
	if !strings.Contains(first.Error(), "validator plugin 50-nri-csig failed") && !strings.Contains(first.Error(), `required plugin \"nri-csig\" not present`) {
		t.Errorf("first creation after the kill refused for another reason: %v", first)
	}
	for i := range 3 {
		_, err := pod.Create(testbed.ContainerSpec{Name: "after-kill-" + string(rune('a'+i)), Image: env.Trusted.Ref})
		if err == nil || !strings.Contains(err.Error(), `required plugin \"nri-csig\" not present`) {
			t.Fatalf("creation %d after the plugin died: got %v, want the default validator's refusal", i+2, err)
		}
	}

	restartDaemon(t)
	if _, err := pod.Create(testbed.ContainerSpec{Name: "trusted-after-restart", Image: env.Trusted.Ref}); err != nil {
		t.Fatalf("trusted image refused after the plugin came back: %v", err)
	}
	_, err := pod.Create(testbed.ContainerSpec{Name: "untrusted-after-restart", Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, "untrusted-after-restart", err, env.Untrusted.Digest)
}

// The external plugin reconnects by itself when containerd restarts.
func TestContainerdRestartPluginReconnects(t *testing.T) {
	before := daemon.Count(`"msg":"synchronized with runtime"`)
	if err := env.Containerd.Restart(); err != nil {
		t.Fatalf("restarting containerd: %v", err)
	}
	if err := daemon.WaitRegistered(before+1, 20*time.Second); err != nil {
		t.Fatalf("nri-csig did not reconnect: %v", err)
	}
	pod := newPod(t, enforcedNS)
	_, err := pod.Create(testbed.ContainerSpec{Name: "after-containerd-restart", Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, "after-containerd-restart", err, env.Untrusted.Digest)
	if _, err := pod.Create(testbed.ContainerSpec{Name: "trusted-after-containerd-restart", Image: env.Trusted.Ref}); err != nil {
		t.Fatalf("trusted image refused after reconnecting: %v", err)
	}
}

// As a pre-installed plugin, containerd launches nri-csig itself from its
// plugin_path and hands it the connection.
func TestPreInstalledPlugin(t *testing.T) {
	daemon.Stop()
	logPath := filepath.Join(env.Containerd.Dir, "preinstalled.log")
	wrapper := filepath.Join(env.Containerd.PluginDir, "50-nri-csig")
	script := "#!/bin/sh\nexec " + env.Tools.NRICsigd + " run --config " + nodeConfig +
		" --containerd-address " + env.Containerd.Socket + " --log-file " + logPath + " --audit json --metrics-address 127.0.0.1:0\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		os.Remove(wrapper)
		if err := env.Containerd.Restart(); err != nil {
			t.Fatalf("restarting containerd: %v", err)
		}
		restartDaemon(t)
	}()
	if err := env.Containerd.Restart(); err != nil {
		t.Fatalf("restarting containerd: %v", err)
	}
	pod := newPod(t, enforcedNS)
	if _, err := pod.Create(testbed.ContainerSpec{Name: "trusted-preinstalled", Image: env.Trusted.Ref}); err != nil {
		t.Fatalf("trusted image refused by the pre-installed plugin: %v", err)
	}
	_, err := pod.Create(testbed.ContainerSpec{Name: "untrusted-preinstalled", Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, "untrusted-preinstalled", err, env.Untrusted.Digest)
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), `"pre_installed":true`) {
		t.Errorf("the pre-installed plugin's log does not say it was launched by containerd:\n%s", b)
	}

	// containerd never relaunches a pre-installed plugin that died: from then
	// on, the default validator refuses every container until containerd restarts.
	if n := testbed.KillProcesses(logPath); n != 1 {
		t.Fatalf("killed %d pre-installed nri-csig processes, want 1", n)
	}
	for i := range 3 {
		_, err := pod.Create(testbed.ContainerSpec{Name: fmt.Sprintf("after-preinstalled-kill-%d", i), Image: env.Trusted.Ref})
		if err == nil {
			t.Fatalf("creation %d after the pre-installed plugin died was allowed", i+1)
		}
		t.Logf("creation %d after the pre-installed plugin died: %s", i+1, reasonOf(err))
	}
}

func TestMalformedConfigRefusesToStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nallowlists:\n  - namespace: csig-enforced\n    digest:\n      - sha256:00\n"), 0o644)
	d, err := env.Containerd.LaunchDaemon(bad)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Wait(10 * time.Second)
	if err == nil {
		t.Fatalf("nri-csig started with a malformed config")
	}
	for _, want := range []string{bad + ":5", "digest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
}

// reasonOf extracts the runtime's reason from crictl's error output.
func reasonOf(err error) string {
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	if i := strings.Index(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	if i := strings.IndexAny(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, `" podSandboxID`); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSuffix(strings.TrimSpace(msg), `"`)
}

// containerd < 2.4 does not report the image a container runs; the daemon
// refuses to run on it and says why, rather than judge on names.
func TestOldContainerdRefused(t *testing.T) {
	old, err := testbed.WithContainerd(env.Tools, "v2.2.9")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testbed.StartContainerd(old, testbed.ContainerdOptions{RegistryHost: env.Registry.Host, SandboxImage: env.Pause.Ref})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.LaunchDaemon("")
	if err != nil {
		t.Fatal(err)
	}
	err = d.Wait(30 * time.Second)
	if err == nil {
		t.Fatal("nri-csig ran on containerd 2.2.9")
	}
	log := d.Log()
	for _, want := range []string{"2.2.9", "upgrade containerd to 2.4 or later"} {
		if !strings.Contains(log+err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v\n%s", want, err, log)
		}
	}
}
