// Command demo shows nri-csig at work on a real containerd: it brings up the
// integration testbed, runs one allowed and one refused container, explains
// what happened, and tears everything down. "make demo" runs it (as root).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/toolcache"
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: run as root (it starts containerd and runc)")
		os.Exit(1)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run() error {
	start := time.Now()
	say("== nri-csig demo: containerd refuses a container because nri-csig says so ==\n")
	say("1. Bringing up a private testbed (first run builds containerd and crictl: about 2 minutes)...")
	env, err := testbed.Setup(true)
	if err != nil {
		return err
	}
	defer func() {
		say("\n6. Tearing down containerd, its pods and the registry.")
		env.Close()
		say("Done in %s.", time.Since(start).Round(100*time.Millisecond))
	}()
	ver, _ := toolcache.ModuleVersion("github.com/containerd/containerd/v2")
	say("   containerd %s (the version in go.mod) with NRI on; its default validator lists %q", ver, testbed.PluginName)
	say("   in required_plugins,")
	say("   so no container is created unless nri-csig is connected and agrees.")
	say("   A registry on %s holds two busybox images that differ by one file:", env.Registry.Host)
	say("     trusted   %s\n               digest %s", env.Trusted.Ref, env.Trusted.Digest)
	say("     untrusted %s\n               digest %s", env.Untrusted.Ref, env.Untrusted.Digest)

	const ns = "demo"
	cfg := filepath.Join(env.Containerd.Dir, "node.yaml")
	cfgText := fmt.Sprintf("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: demo\nallowlists:\n  - namespace: %s\n    digests:\n      - %s\n", ns, env.Trusted.Digest)
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		return err
	}
	say("\n2. The node config allows exactly one image digest in namespace %q:\n%s", ns, indent(cfgText))

	d, err := env.Containerd.StartDaemon(cfg)
	if err != nil {
		return err
	}
	defer d.Stop()
	say("3. nri-csig run is connected to containerd's NRI socket as plugin 50-nri-csig.")

	pod, err := env.Containerd.RunPod("web", ns)
	if err != nil {
		return err
	}
	say("\n4. Pod web in namespace %q: a container from the trusted image (by tag).", ns)
	id, err := pod.Run(testbed.ContainerSpec{Name: "trusted", Image: env.Trusted.Ref, Command: []string{"/bin/sh", "-c", "echo hello from the trusted image; sleep 3600"}})
	if err != nil {
		return fmt.Errorf("the trusted container was refused: %w", err)
	}
	var out string
	testbed.Poll(5*time.Second, func() error {
		out, err = env.Containerd.Logs(id)
		if err == nil && out == "" {
			return fmt.Errorf("no output yet")
		}
		return err
	})
	say("   ALLOWED: created and started; it printed: %q", strings.TrimSpace(out))
	say("   audit record: %s", lastRecord(d, "trusted"))

	say("\n5. The same pod, a container from the untrusted image, claiming to be the trusted one")
	say("   (user_specified_image, which sets the io.kubernetes.cri.image-name annotation).")
	_, err = pod.Create(testbed.ContainerSpec{Name: "untrusted", Image: env.Untrusted.Ref, UserSpecifiedImage: env.Trusted.Ref})
	if err == nil {
		return fmt.Errorf("the untrusted container was created: nri-csig did not refuse it")
	}
	say("   REFUSED. crictl create failed with the runtime's reason:\n     %s", reason(err))
	say("   audit record: %s", lastRecord(d, "untrusted"))
	say("   nri-csig judged the digest containerd will run (from its content store),")
	say("   not the name the caller gave, so the claim changed nothing.")
	return nil
}

func indent(s string) string {
	return "     " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n     ") + "\n"
}

func reason(err error) string {
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	if i := strings.Index(msg, "reason: "); i >= 0 {
		msg = msg[i+len("reason: "):]
	}
	if i := strings.Index(msg, `" podSandboxID`); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// lastRecord returns the daemon's last audit record about a container, as the
// JSON line it wrote (journald gets the same fields as CSIG_*).
func lastRecord(d *testbed.Daemon, container string) string {
	recs := d.AuditRecords(map[string]string{"container": container})
	if len(recs) == 0 {
		return "(none)"
	}
	b, _ := json.Marshal(recs[len(recs)-1])
	return string(b)
}
