// Command demo shows nri-csig's main job on a real containerd: an operator
// creates a witness and a security policy, signs one image digest, and the
// node daemon lets that image run (marked "Trusted Image") while refusing an
// unsigned one, even when the caller claims it is the signed one. It brings up
// the integration testbed, explains each step, and tears everything down.
// "make demo" runs it (as root).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
	say("== nri-csig demo: containerd runs only images whose digest a witness signed ==\n")
	say("1. Bringing up a private testbed (the first run builds containerd and crictl: about 2 minutes)...")
	env, err := testbed.Setup(true)
	if err != nil {
		return err
	}
	defer func() {
		say("\n7. Tearing down containerd, its pods and the registry.")
		env.Close()
		say("Done in %s.", time.Since(start).Round(100*time.Millisecond))
	}()
	ver, _ := toolcache.ModuleVersion("github.com/containerd/containerd/v2")
	say("   containerd %s (the version in go.mod) with NRI on; its default validator requires", ver)
	say("   the plugin %q, so no container is created unless nri-csig is connected and agrees.", testbed.PluginName)
	say("   A registry on %s holds two busybox images that differ by one file:", env.Registry.Host)
	say("     %s  digest %s", env.Trusted.Ref, env.Trusted.Digest)
	say("     %s  digest %s", env.Untrusted.Ref, env.Untrusted.Digest)

	work := filepath.Join(env.Containerd.Dir, "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	bundle := filepath.Join(work, "bundle.yaml")
	key := filepath.Join(work, "ci")
	csig := func(args ...string) (string, error) {
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = a
			if strings.Contains(a, " ") {
				shown[i] = fmt.Sprintf("%q", a)
			}
		}
		say("   $ nri-csig %s", strings.Join(shown, " "))
		cmd := exec.Command(env.Tools.NRICsig, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			return out.String(), fmt.Errorf("nri-csig %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String(), nil
	}

	say("\n2. The operator creates a witness (its key here is a local dev key; in production an")
	say("   Alibaba Cloud KMS key, --key alikms://REGION/KEY) and a security policy, switched on:")
	for _, args := range [][]string{
		{"generate-key", "--output-key-prefix", key},
		{"witness", "create", "--name", "ci", "--key", key + ".pub", "--description", "CI pipeline", "--bundle", bundle},
		{"policy", "create", "--name", "shop-signed", "--witness", "ci", "--cluster", "demo", "--namespace", "shop", "--enabled", "--bundle", bundle},
	} {
		if _, err := csig(args...); err != nil {
			return err
		}
	}

	say("\n3. CI signs the digest of one image (cosign-compatible signature, stored in the registry):")
	out, err := csig("sign", "--key", key+".key", env.Trusted.Ref)
	if err != nil {
		return err
	}
	say("%s", indent(out))

	cfg := filepath.Join(work, "node.yaml")
	cfgText := fmt.Sprintf("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: demo\nbundle:\n  file: %s\nstateDir: %s\n", bundle, filepath.Join(work, "state"))
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		return err
	}
	say("\n4. The node daemon runs with this node config (the bundle would come from a ConfigMap or an OCI registry):\n%s", indent(cfgText))
	d, err := env.Containerd.StartDaemon(cfg)
	if err != nil {
		return err
	}
	defer d.Stop()
	say("   nri-csig run is registered with containerd's NRI as plugin 50-nri-csig.")

	pod, err := env.Containerd.RunPod("web", "shop")
	if err != nil {
		return err
	}
	say("\n5. Pod web in namespace \"shop\": a container from the signed image.")
	id, err := pod.Run(testbed.ContainerSpec{Name: "signed", Image: env.Trusted.Ref, Command: []string{"/bin/sh", "-c", "echo hello from the signed image; sleep 3600"}})
	if err != nil {
		return fmt.Errorf("the signed container was refused: %w", err)
	}
	var logs string
	testbed.Poll(5*time.Second, func() error {
		logs, err = env.Containerd.Logs(id)
		if err == nil && logs == "" {
			return fmt.Errorf("no output yet")
		}
		return err
	})
	say("   ALLOWED: it runs and printed %q.", strings.TrimSpace(logs))
	inspect, _ := env.Containerd.Crictl("inspect", id)
	for _, line := range strings.Split(inspect, "\n") {
		if strings.Contains(line, `"nri-csig.io/`) {
			say("   crictl inspect: %s", strings.TrimSpace(line))
		}
	}
	say("   audit record: %s", lastRecord(d, "signed"))

	say("\n6. The same pod, a container from the unsigned image that claims to be the signed one")
	say("   (user_specified_image, which sets the io.kubernetes.cri.image-name annotation):")
	_, err = pod.Create(testbed.ContainerSpec{Name: "unsigned", Image: env.Untrusted.Ref, UserSpecifiedImage: env.Trusted.Ref})
	if err == nil {
		return fmt.Errorf("the unsigned container was created: nri-csig did not refuse it")
	}
	say("   REFUSED. crictl create failed with the runtime's reason:\n     %s", reason(err))
	say("   audit record: %s", lastRecord(d, "unsigned"))
	say("   nri-csig judged the digest containerd will run (from its own content store),")
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
