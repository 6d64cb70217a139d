//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

func newPod(t *testing.T, namespace string) *testbed.Pod { return env.Containerd.NewPod(t, namespace) }

// mustBeRefused checks that err is nri-csig's refusal, naming what an
// operator needs, and that the container does not exist.
func mustBeRefused(t *testing.T, pod *testbed.Pod, name string, err error, wantDigest string) {
	t.Helper()
	if err == nil {
		t.Fatalf("container %q was created; want it refused by nri-csig", name)
	}
	// crictl prints the runtime's error Go-quoted.
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	for _, want := range []string{"nri-csig: refused container", `"` + name + `"`, pod.Namespace + "/" + pod.Name, wantDigest, "not on the allow list"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not mention %q:\n%s", want, msg)
		}
	}
	names, lerr := pod.ContainerNames()
	if lerr != nil {
		t.Fatalf("listing containers: %v", lerr)
	}
	for _, n := range names {
		if n == name {
			t.Errorf("refused container %q exists in the runtime", name)
		}
	}
}

func TestAllowedDigestRuns(t *testing.T) {
	pod := newPod(t, enforcedNS)
	id, err := pod.Run(testbed.ContainerSpec{Name: "allowed", Image: env.Trusted.Ref})
	if err != nil {
		t.Fatalf("allowed image refused: %v", err)
	}
	err = testbed.Poll(10*time.Second, func() error {
		out, err := env.Containerd.Logs(id)
		if err == nil && !strings.Contains(out, "hello from allowed") {
			err = errString("output so far: " + out)
		}
		return err
	})
	if err != nil {
		t.Fatalf("reading the container's output: %v", err)
	}
	if n := len(daemon.AuditRecords(map[string]string{"decision": "allow", "rule": "allowlist", "container": "allowed", "digest": env.Trusted.Digest})); n != 1 {
		t.Errorf("%d allow audit records for the container, want 1; log:\n%s", n, daemon.Log())
	}
}

func TestNotAllowedDigestRefused(t *testing.T) {
	pod := newPod(t, enforcedNS)
	_, err := pod.Create(testbed.ContainerSpec{Name: "refused", Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, "refused", err, env.Untrusted.Digest)
	if !strings.Contains(err.Error(), env.Untrusted.Ref) {
		t.Errorf("refusal does not name the image reference %s: %v", env.Untrusted.Ref, err)
	}
	if n := len(daemon.AuditRecords(map[string]string{"decision": "deny", "container": "refused", "namespace": enforcedNS, "digest": env.Untrusted.Digest})); n != 1 {
		t.Errorf("%d deny audit records for the container, want 1", n)
	}
}

func TestTagAndDigestGiveSameVerdict(t *testing.T) {
	pod := newPod(t, enforcedNS)
	for _, ref := range []string{env.Trusted.Ref, env.Trusted.DigestRef(), env.Trusted.ConfigDigest} {
		if _, err := pod.Create(testbed.ContainerSpec{Name: "trusted-" + shortName(ref), Image: ref}); err != nil {
			t.Errorf("trusted image by %s refused: %v", ref, err)
		}
	}
	for _, ref := range []string{env.Untrusted.Ref, env.Untrusted.DigestRef(), env.Untrusted.ConfigDigest} {
		name := "untrusted-" + shortName(ref)
		_, err := pod.Create(testbed.ContainerSpec{Name: name, Image: ref})
		mustBeRefused(t, pod, name, err, env.Untrusted.Digest)
	}
}

// The image-name annotation holds what the CRI caller says
// (user_specified_image); it must not change the verdict.
func TestSpoofedImageNameStillRefused(t *testing.T) {
	pod := newPod(t, enforcedNS)
	_, err := pod.Create(testbed.ContainerSpec{Name: "spoofed", Image: env.Untrusted.Ref, UserSpecifiedImage: env.Trusted.Ref})
	mustBeRefused(t, pod, "spoofed", err, env.Untrusted.Digest)
}

func TestUncoveredNamespaceAllowed(t *testing.T) {
	pod := newPod(t, uncoveredNS)
	if _, err := pod.Run(testbed.ContainerSpec{Name: "uncovered", Image: env.Untrusted.Ref}); err != nil {
		t.Fatalf("image in a namespace no rule covers was refused: %v", err)
	}
	if n := len(daemon.AuditRecords(map[string]string{"decision": "allow", "rule": "uncovered", "namespace": uncoveredNS, "container": "uncovered"})); n != 1 {
		t.Errorf("%d audit records for the uncovered namespace, want 1", n)
	}
}

func shortName(ref string) string {
	switch {
	case strings.HasPrefix(ref, "sha256:"):
		return "by-id"
	case strings.Contains(ref, "@"):
		return "by-digest"
	default:
		return "by-tag"
	}
}

type errString string

func (e errString) Error() string { return string(e) }
