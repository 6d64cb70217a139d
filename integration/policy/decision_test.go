//go:build integration

package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// A pod namespace is the CRI caller's word: one that is not a Kubernetes
// namespace name is refused before any policy is looked up, so that
// "default " or "DEFAULT" cannot pass for an uncovered namespace.
func TestInvalidNamespacesRefused(t *testing.T) {
	img := newImage(t, env.Registry, "app/ns-check:1", "ns-check")
	for name, ns := range map[string]string{"trailing-space": "default ", "upper-case": "DEFAULT", "dot": "default.x"} {
		t.Run(name, func(t *testing.T) {
			pod := newPod(t, ns)
			mustRefuse(t, pod, "bad-ns", img, "is not a valid Kubernetes namespace name")
			rec := waitRecord(t, map[string]string{"event": "create", "container": "bad-ns", "namespace": ns})
			if rec["decision"] != "deny" || rec["rule"] != "namespace" || rec["policy"] != nil || rec["level"] != "WARN" {
				t.Errorf("record = %v, want a warning: deny by namespace, no policy", rec)
			}
		})
	}
	// The same image runs in the valid, uncovered namespace they imitate.
	mustRun(t, newPod(t, "default"), "good-ns", img)
}

// Revoking a manifest digest revokes its content: a new manifest around the
// same config and layers (one extra annotation, another tag) is refused, in
// a namespace no policy covers, although the revoked manifest itself was
// never pulled by the node.
func TestRevokedManifestRefusesRewrappedManifest(t *testing.T) {
	base, err := testbed.BusyboxImage(env.Tools.Busybox, "revoked-content")
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := env.Registry.Push("app/revoked-content:1", base)
	if err != nil {
		t.Fatal(err)
	}
	rewrapped := mutate.Annotations(base, map[string]string{"io.example/rewrapped": "yes"}).(v1Image)
	rewrappedDigest, err := env.Registry.Push("app/revoked-content:rewrapped", rewrapped)
	if err != nil {
		t.Fatal(err)
	}
	if rewrappedDigest == revoked {
		t.Fatal("the re-wrapped manifest has the revoked manifest's digest")
	}
	ref := env.Registry.Ref("app/revoked-content:rewrapped")
	config, err := env.Containerd.Pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	img := testbed.Image{Ref: ref, Digest: rewrappedDigest, ConfigDigest: config}
	pod := newPod(t, "free")
	mustRun(t, pod, "before-revocation", img)

	editBundle(t, "revocation", "create", "--name", "content-93", "--image", env.Registry.Ref("app/revoked-content")+"@"+revoked,
		"--reason", "built on a compromised runner")
	t.Cleanup(func() { editBundle(t, "revocation", "delete", "content-93") })
	mustRefuse(t, pod, "after-revocation", img, "is revoked", config, "built on a compromised runner")
	rec := waitRecord(t, map[string]string{"event": "create", "container": "after-revocation"})
	if rec["decision"] != "deny" || rec["rule"] != "revocation" || rec["revocation"] != "content-93" || rec["digest"] != config || rec["policy"] != nil {
		t.Errorf("record = %v, want deny by revocation content-93 naming config %s", rec, config)
	}
}

// The journald sink writes the fields docs/OPERATIONS.md documents, on real
// journald: allow, deny and exempt records of one daemon.
func TestJournaldFieldsOfDecisions(t *testing.T) {
	stopJournald, err := testbed.EnsureJournald()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopJournald)
	signed := newImage(t, env.Registry, "app/journald-signed:1", "journald-signed", keyFile(ciKey, "key"))
	unsigned := newImage(t, env.Registry, "app/journald-unsigned:1", "journald-unsigned")
	exempted := newImage(t, env.Registry, "app/journald-exempt:1", "journald-exempt")
	editBundle(t, "exemption", "create", "--name", "inc-journald", "--namespace", "signed", "--image-digest", exempted.Digest,
		"--expires", "1h", "--reason", "journald check")
	t.Cleanup(func() { editBundle(t, "exemption", "delete", "inc-journald") })

	daemon.Stop()
	jd, err := env.Containerd.StartDaemon(nodeConfig, "--audit", "journald")
	if err != nil {
		t.Fatalf("starting nri-csig with --audit journald: %v", err)
	}
	t.Cleanup(func() {
		jd.Stop()
		d, err := env.Containerd.StartDaemon(nodeConfig)
		if err != nil {
			t.Fatalf("restarting nri-csig: %v", err)
		}
		daemon = d
	})

	pod := newPod(t, "signed")
	suffix := fmt.Sprint(time.Now().UnixNano())
	allowName, denyName, exemptName := "allow-"+suffix, "deny-"+suffix, "exempt-"+suffix
	mustRun(t, pod, allowName, signed)
	mustRefuse(t, pod, denyName, unsigned, `policy "ci-required"`)
	mustRun(t, pod, exemptName, exempted)

	common := map[string]string{"SYSLOG_IDENTIFIER": "nri-csig", "CSIG_EVENT": "create", "CSIG_NAMESPACE": "signed", "CSIG_POD": pod.Name}
	for _, tc := range []struct {
		container string
		img       testbed.Image
		want      map[string]string
		absent    []string
	}{
		{allowName, signed, map[string]string{"CSIG_DECISION": "allow", "CSIG_RULE": "policy", "CSIG_POLICY": "ci-required",
			"CSIG_WITNESS": "ci", "CSIG_MODE": "enforce", "CSIG_DIGEST": signed.Digest, "PRIORITY": "6"}, []string{"CSIG_EXEMPTION", "CSIG_REVOCATION"}},
		{denyName, unsigned, map[string]string{"CSIG_DECISION": "deny", "CSIG_RULE": "policy", "CSIG_POLICY": "ci-required",
			"CSIG_MODE": "enforce", "CSIG_DIGEST": unsigned.Digest, "PRIORITY": "4"}, []string{"CSIG_WITNESS", "CSIG_EXEMPTION"}},
		{exemptName, exempted, map[string]string{"CSIG_DECISION": "exempt", "CSIG_RULE": "exemption", "CSIG_EXEMPTION": "inc-journald",
			"CSIG_DIGEST": exempted.Digest, "PRIORITY": "4"}, []string{"CSIG_POLICY", "CSIG_WITNESS", "CSIG_MODE"}},
	} {
		t.Run(tc.want["CSIG_DECISION"], func(t *testing.T) {
			var rec map[string]any
			err := testbed.Poll(10*time.Second, func() error {
				out, err := testbed.Journal("SYSLOG_IDENTIFIER=nri-csig", "CSIG_CONTAINER="+tc.container)
				if err != nil {
					return err
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 1 || lines[0] == "" {
					return fmt.Errorf("journalctl found %d records for %s, want 1: %s", len(lines), tc.container, out)
				}
				return json.Unmarshal([]byte(lines[0]), &rec)
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"CSIG_CONTAINER": tc.container, "CSIG_IMAGE": tc.img.Ref, "CSIG_CONFIG_DIGEST": tc.img.ConfigDigest}
			for k, v := range common {
				want[k] = v
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("journald field %s = %v, want %q", k, rec[k], v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := rec[k]; ok {
					t.Errorf("journald field %s = %v, want it absent", k, v)
				}
			}
		})
	}
}
