//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// runOutsideCRI starts a container with ctr in a containerd namespace: NRI
// never sees it.
func runOutsideCRI(t *testing.T, ns, id string, img testbed.Image) {
	t.Helper()
	if _, err := env.Containerd.CtrIn(ns, "images", "pull", "--plain-http", img.Ref); err != nil {
		t.Fatalf("ctr pull: %v", err)
	}
	if _, err := env.Containerd.CtrIn(ns, "run", "-d", "--net-host", img.Ref, id, "/bin/sh", "-c", "sleep 3600"); err != nil {
		t.Fatalf("ctr run: %v", err)
	}
	t.Cleanup(func() {
		env.Containerd.CtrIn(ns, "tasks", "kill", "-s", "SIGKILL", id)
		testbed.Poll(5*time.Second, func() error {
			_, err := env.Containerd.CtrIn(ns, "containers", "rm", id)
			return err
		})
	})
}

func waitRecord(t *testing.T, match map[string]string) map[string]any {
	return daemon.WaitRecord(t, match)
}

// A container started with ctr never reaches NRI; the daemon sees its task
// start and judges it. Without a policy covering namespace "*" it is allowed
// as uncovered, and the record says so.
func TestContainerOutsideCRIIsJudged(t *testing.T) {
	runOutsideCRI(t, "default", "ctr-outside-cri", env.Untrusted)
	rec := waitRecord(t, map[string]string{"event": "running", "container_id": "ctr-outside-cri", "containerd_namespace": "default"})
	if rec["config_digest"] != env.Untrusted.ConfigDigest || rec["digest"] != env.Untrusted.Digest {
		t.Errorf("record judged the wrong image: %v", rec)
	}
	if rec["rule"] != "uncovered" || rec["decision"] != "allow" {
		t.Errorf("record = %v, want allow by uncovered", rec)
	}
}
