//go:build integration

package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

type v1Image = v1.Image

func newPod(t *testing.T, namespace string) *testbed.Pod { return env.Containerd.NewPod(t, namespace) }

func unquote(err error) string { return strings.ReplaceAll(err.Error(), `\"`, `"`) }

func mustRun(t *testing.T, pod *testbed.Pod, name string, img testbed.Image) string {
	t.Helper()
	id, err := pod.Run(testbed.ContainerSpec{Name: name, Image: img.Ref})
	if err != nil {
		t.Fatalf("container %q from %s was refused: %v", name, img.Ref, err)
	}
	return id
}

func mustRefuse(t *testing.T, pod *testbed.Pod, name string, img testbed.Image, wants ...string) {
	t.Helper()
	_, err := pod.Create(testbed.ContainerSpec{Name: name, Image: img.Ref})
	if err == nil {
		t.Fatalf("container %q from %s was created; want it refused", name, img.Ref)
	}
	msg := unquote(err)
	for _, w := range append([]string{"nri-csig: refused container", `"` + name + `"`, pod.Namespace + "/" + pod.Name}, wants...) {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal does not mention %q:\n%s", w, msg)
		}
	}
	names, _ := pod.ContainerNames()
	for _, n := range names {
		if n == name {
			t.Errorf("refused container %q exists", name)
		}
	}
}

func waitRecord(t *testing.T, match map[string]string) map[string]any {
	return daemon.WaitRecord(t, match)
}

// editBundle runs a bundle-editing command (which raises the serial), signs
// the bundle with the key the node requires, and waits until the daemon has
// the new bundle in force.
func editBundle(t *testing.T, args ...string) {
	t.Helper()
	before := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "loaded"}))
	mustCLI(t, append(args, "--bundle", bundle)...)
	mustCLI(t, "bundle", "sign", "--key", keyFile(bundleKey, "key"), "--bundle", bundle)
	err := testbed.Poll(15*time.Second, func() error {
		if n := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "loaded"})); n <= before {
			return fmt.Errorf("the daemon has not loaded the edited bundle (%d loads)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, testbed.LastLines(daemon.Log(), 10))
	}
}

func TestSignedByWitnessRunsAndIsMarkedTrusted(t *testing.T) {
	img := newImage(t, env.Registry, "app/signed:1", "signed-by-ci", keyFile(ciKey, "key"))
	pod := newPod(t, "signed")
	id := mustRun(t, pod, "trusted", img)
	out, err := env.Containerd.Crictl("inspect", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"nri-csig.io/trusted-image": "true"`, `"nri-csig.io/witnesses": "ci"`, `"nri-csig.io/image-digest": "` + img.Digest + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("crictl inspect does not show %s", want)
		}
	}
	rec := waitRecord(t, map[string]string{"event": "create", "container": "trusted", "namespace": "signed"})
	if rec["decision"] != "allow" || rec["rule"] != "policy" || rec["policy"] != "ci-required" || rec["witness"] != "ci" || rec["digest"] != img.Digest {
		t.Errorf("audit record = %v", rec)
	}
}

// A node whose bundle has key witnesses only never starts the certificate
// verifier process (nri-csig cert-verifier) as it admits and refuses signed
// images: a fresh daemon, as earlier tests may have added a sigstore witness.
func TestKeyWitnessNodeStartsNoCertVerifier(t *testing.T) {
	restartDaemon(t)
	signed := newImage(t, env.Registry, "app/keys-only:1", "keys-only", keyFile(ciKey, "key"))
	mustRun(t, newPod(t, "signed"), "keys-only", signed)
	other := newImage(t, env.Registry, "app/keys-only-other:1", "keys-only-other", keyFile(otherKey, "key"))
	mustRefuse(t, newPod(t, "signed"), "keys-only-other", other, `policy "ci-required"`)
	if n := daemon.Count("certificate verifier"); n != 0 {
		t.Fatalf("%d log lines of the certificate verifier process on a key-witness node:\n%s", n, daemon.Log())
	}
	children, err := daemon.Children()
	if err != nil {
		t.Fatal(err)
	}
	if len(children) != 0 {
		t.Fatalf("the daemon has children %v; want none", children)
	}
}

func TestUnsignedRefused(t *testing.T) {
	img := newImage(t, env.Registry, "app/unsigned:1", "unsigned")
	pod := newPod(t, "signed")
	mustRefuse(t, pod, "unsigned", img, `policy "ci-required"`, img.Digest, "no signatures found")
}

func TestSignedByAnotherKeyRefused(t *testing.T) {
	img := newImage(t, env.Registry, "app/other:1", "signed-by-other", keyFile(otherKey, "key"))
	pod := newPod(t, "signed")
	mustRefuse(t, pod, "other-key", img, `policy "ci-required"`, img.Digest)
}

func TestDisabledPolicyDoesNothing(t *testing.T) {
	img := newImage(t, env.Registry, "app/unsigned-off:1", "unsigned-off")
	pod := newPod(t, "off")
	mustRun(t, pod, "disabled-policy", img)
	rec := waitRecord(t, map[string]string{"event": "create", "container": "disabled-policy"})
	if rec["rule"] != "uncovered" {
		t.Errorf("a disabled policy decided: %v", rec)
	}
}

func TestUncoveredNamespaceRuns(t *testing.T) {
	img := newImage(t, env.Registry, "app/unsigned-free:1", "unsigned-free")
	pod := newPod(t, "free")
	mustRun(t, pod, "uncovered", img)
}

func TestAuditModeRunsAndRecordsTheViolation(t *testing.T) {
	img := newImage(t, env.Registry, "app/unsigned-trial:1", "unsigned-trial")
	pod := newPod(t, "trial")
	mustRun(t, pod, "audited", img)
	rec := waitRecord(t, map[string]string{"event": "create", "decision": "would-deny", "container": "audited", "policy": "trial"})
	if rec["mode"] != "audit" || !strings.Contains(fmt.Sprint(rec["reason"]), "would refuse") {
		t.Errorf("audit-mode record = %v", rec)
	}
}

func TestTwoWitnessesRequired(t *testing.T) {
	one := newImage(t, env.Registry, "app/one-signature:1", "one-signature", keyFile(ciKey, "key"))
	both := newImage(t, env.Registry, "app/two-signatures:1", "two-signatures", keyFile(ciKey, "key"), keyFile(secKey, "key"))
	pod := newPod(t, "two")
	mustRefuse(t, pod, "one-of-two", one, `policy "two-witnesses"`, "sec")
	mustRun(t, pod, "both", both)
}

// The real Alibaba Cloud KMS SDK signs (against the local KMS endpoint that
// checks its request signatures); the node verifies offline with the public
// key the witness recorded.
func TestSignedThroughKMSRuns(t *testing.T) {
	img := newImage(t, env.Registry, "app/kms:1", "signed-by-kms", kmsRef)
	pod := newPod(t, "release")
	mustRun(t, pod, "kms-signed", img)
	unsigned := newImage(t, env.Registry, "app/kms-unsigned:1", "kms-unsigned")
	mustRefuse(t, pod, "kms-unsigned", unsigned, `policy "release"`)
}

// A tag re-pointed to another digest after signing: the node judges the
// digest it runs, and the signature does not follow the tag.
func TestTagMovedAfterSigningRefused(t *testing.T) {
	signed := newImage(t, env.Registry, "app/moving:1", "moving-signed", keyFile(ciKey, "key"))
	moved := newImage(t, env.Registry, "app/moving:1", "moving-unsigned")
	if moved.Digest == signed.Digest {
		t.Fatal("the tag did not move")
	}
	pod := newPod(t, "signed")
	mustRefuse(t, pod, "moved-tag", moved, moved.Digest)
}

// Issue 4: a policy switched on by editing the bundle judges the next
// container, without restarting the daemon.
func TestPolicyEnabledByEditingTheBundle(t *testing.T) {
	img := newImage(t, env.Registry, "app/late:1", "late-unsigned")
	pod := newPod(t, "late")
	mustRun(t, pod, "before-enable", img)
	editBundle(t, "policy", "enable", "late")
	mustRefuse(t, pod, "after-enable", img, `policy "late"`)
	editBundle(t, "policy", "disable", "late")
	mustRun(t, pod, "after-disable", img)
}

// The registry goes away after verification: the node verified the
// signatures when the image landed, kept them on disk, and trusts the image
// again even after the daemon restarted.
func TestRegistryStoppedAfterVerification(t *testing.T) {
	reg, err := testbed.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	img := newImage(t, reg, "offline/app:1", "offline", keyFile(ciKey, "key"))
	pod := newPod(t, "signed")
	mustRun(t, pod, "before-registry-stop", img)
	reg.Close()
	daemon.Stop()
	d, err := env.Containerd.StartDaemon(nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	daemon = d
	mustRun(t, pod, "after-registry-stop", img)
}

// A witness key revoked by a new bundle: new containers are refused at once,
// and the running ones are reported.
func TestRevokedWitnessKey(t *testing.T) {
	img := newImage(t, env.Registry, "app/revoked:1", "to-be-revoked", keyFile(ciKey, "key"))
	pod := newPod(t, "signed")
	id := mustRun(t, pod, "running-before-revocation", img)
	editBundle(t, "revocation", "create", "--name", "ci-leak", "--key-fingerprint", fingerprint(t, keyFile(ciKey, "pub")), "--reason", "key leaked")
	t.Cleanup(func() { editBundle(t, "revocation", "delete", "ci-leak") })
	mustRefuse(t, pod, "after-revocation", img, `policy "ci-required"`)
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": id})
	if rec["decision"] != "deny" || !strings.Contains(fmt.Sprint(rec["reason"]), "not trusted") {
		t.Errorf("running-container record = %v", rec)
	}
}

// A container started with ctr never reaches NRI; with a policy covering
// every namespace and --stop-untrusted, the daemon reports it and stops it.
func TestUntrustedContainerOutsideCRIStopped(t *testing.T) {
	unsigned := newImage(t, env.Registry, "app/ctr-unsigned:1", "ctr-unsigned")
	daemon.Stop()
	d, err := env.Containerd.StartDaemon(nodeConfig, "--stop-untrusted")
	if err != nil {
		t.Fatal(err)
	}
	daemon = d
	editBundle(t, "policy", "enable", "everything")
	t.Cleanup(func() { editBundle(t, "policy", "disable", "everything") })

	if _, err := env.Containerd.CtrIn("default", "images", "pull", "--plain-http", unsigned.Ref); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Containerd.CtrIn("default", "run", "-d", "--net-host", unsigned.Ref, "outside-cri", "/bin/sh", "-c", "sleep 3600"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Containerd.CtrIn("default", "tasks", "kill", "-s", "SIGKILL", "outside-cri")
		testbed.Poll(5*time.Second, func() error {
			_, err := env.Containerd.CtrIn("default", "containers", "rm", "outside-cri")
			return err
		})
	})
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": "outside-cri", "containerd_namespace": "default"})
	if rec["decision"] != "stopped" || rec["rule"] != "policy" || rec["policy"] != "everything" || rec["level"] != "WARN" {
		t.Errorf("record = %v, want stopped by policy/everything", rec)
	}
	err = testbed.Poll(10*time.Second, func() error {
		out, err := env.Containerd.CtrIn("default", "tasks", "ls")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "outside-cri") && strings.Contains(line, "RUNNING") {
				return fmt.Errorf("still running: %s", line)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("the untrusted container was not stopped: %v", err)
	}
}

// Multi-platform images: a signature on the index covers its platform
// manifests; a signature on one platform's manifest covers that manifest only.
// The container's config digest must belong to the signed image.
func TestMultiPlatformDigestBinding(t *testing.T) {
	push := func(tag string) (index, amd, arm string) {
		amd64, err := testbed.BusyboxImage(env.Tools.Busybox, "multi-amd64-"+tag)
		if err != nil {
			t.Fatal(err)
		}
		arm64, err := testbed.PlatformImage(env.Tools.Busybox, "multi-arm64-"+tag, "arm64")
		if err != nil {
			t.Fatal(err)
		}
		idx, err := testbed.IndexOf(map[string]v1Image{"amd64": amd64, "arm64": arm64})
		if err != nil {
			t.Fatal(err)
		}
		index, err = env.Registry.PushIndex(tag, idx)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := amd64.Digest()
		b, _ := arm64.Digest()
		return index, a.String(), b.String()
	}
	pod := newPod(t, "signed")

	// The index signed: the amd64 container runs.
	indexDigest, _, _ := push("multi/index-signed:1")
	ref := env.Registry.Ref("multi/index-signed:1")
	out := mustCLI(t, "sign", "--key", keyFile(ciKey, "key"), ref)
	if !strings.Contains(out, indexDigest) {
		t.Fatalf("sign did not sign the index %s:\n%s", indexDigest, out)
	}
	if _, err := env.Containerd.Pull(ref); err != nil {
		t.Fatal(err)
	}
	mustRun(t, pod, "index-signed", testbed.Image{Ref: ref})

	// Only the arm64 manifest signed: nothing vouches for the amd64 content.
	env2 := "multi/arm-signed:1"
	_, _, armDigest := push(env2)
	ref2 := env.Registry.Ref(env2)
	out = mustCLI(t, "sign", "--key", keyFile(ciKey, "key"), "--platform", "linux/arm64", ref2)
	if !strings.Contains(out, armDigest) {
		t.Fatalf("sign did not sign the arm64 manifest %s:\n%s", armDigest, out)
	}
	if _, err := env.Containerd.Pull(ref2); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, pod, "arm-signed-only", testbed.Image{Ref: ref2}, `policy "ci-required"`)
}

// BenchmarkCreateSigned measures "crictl create" of a container whose image
// the daemon verified when it landed (the request is a cache lookup), and the
// daemon's own decision latency and memory.
func BenchmarkCreateSigned(b *testing.B) {
	t := &testing.T{}
	img := newImage(t, env.Registry, "bench/signed:1", "bench-signed", keyFile(ciKey, "key"))
	pod, err := env.Containerd.RunPod("bench-signed", "signed")
	if err != nil {
		b.Fatal(err)
	}
	defer pod.Remove()
	testbed.BenchmarkCreates(b, daemon, pod, img.Ref)
}

// Break-glass: an unexpired exemption in the (signed) bundle lets the image
// run, and the decision is a warning record; pod annotations bypass nothing.
func TestExemptionIsBreakGlass(t *testing.T) {
	img := newImage(t, env.Registry, "app/hotfix:1", "hotfix-unsigned")
	pod := newPod(t, "signed")
	_, err := pod.Create(testbed.ContainerSpec{Name: "before-exemption", Image: img.Ref})
	if err == nil {
		t.Fatal("an unsigned image ran before any exemption")
	}
	editBundle(t, "exemption", "create", "--name", "inc-1", "--namespace", "signed", "--image-digest", img.Digest,
		"--expires", "1h", "--reason", "hotfix before the signed build")
	t.Cleanup(func() { editBundle(t, "exemption", "delete", "inc-1") })
	mustRun(t, pod, "exempted", img)
	rec := waitRecord(t, map[string]string{"event": "create", "container": "exempted"})
	if rec["decision"] != "exempt" || rec["rule"] != "exemption" || rec["exemption"] != "inc-1" || rec["policy"] != nil || rec["level"] != "WARN" {
		t.Errorf("exemption record = %v, want a warning with decision exempt", rec)
	}
}

// Whoever can edit the bundle file (a ConfigMap) but not sign it cannot weaken
// or change the rules: the node refuses the unsigned bundle, says so, and
// keeps enforcing the one in force.
func TestUnsignedBundleEditRefused(t *testing.T) {
	img := newImage(t, env.Registry, "app/late-unsigned:1", "late-unsigned-2")
	pod := newPod(t, "signed")
	before := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "refused"}))
	// An attacker switches the ci-required policy off without the signing key.
	mustCLI(t, "policy", "disable", "ci-required", "--bundle", bundle)
	t.Cleanup(func() { editBundle(t, "policy", "enable", "ci-required") })
	err := testbed.Poll(15*time.Second, func() error {
		if n := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "refused"})); n <= before {
			return fmt.Errorf("no refused reload record yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, testbed.LastLines(daemon.Log(), 10))
	}
	mustRefuse(t, pod, "after-unsigned-edit", img, `policy "ci-required"`)
}
