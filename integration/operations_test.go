//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// /readyz is 200 only while the plugin is registered with NRI; /metrics counts
// decisions by result and rule.
func TestReadyzAndMetrics(t *testing.T) {
	base, err := daemon.MetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(base + "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz while registered = %d, %v", code, err)
	}
	pod := newPod(t, enforcedNS)
	if _, err := pod.Create(testbed.ContainerSpec{Name: "counted", Image: env.Untrusted.Ref}); err == nil {
		t.Fatal("untrusted image created")
	}
	_, body, err := get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`nri_csig_decisions_total{decision="deny",event="create",rule="allowlist"}`, "nri_csig_decision_duration_seconds_bucket", "nri_csig_nri_registered"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// containerd goes away: not ready; it comes back: ready again.
	if err := env.Containerd.Stop(); err != nil {
		t.Fatal(err)
	}
	err = testbed.Poll(10*time.Second, func() error {
		if code, _, _ := get(base + "/readyz"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz = %d with containerd stopped", code)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if err := env.Containerd.Start(); err != nil {
		t.Fatal(err)
	}
	err = testbed.Poll(20*time.Second, func() error {
		if code, _, _ := get(base + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d after containerd came back", code)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// SIGHUP re-reads the node config: a good one takes effect at the next
// decision; a malformed one is refused and the one in force stays.
func TestSIGHUPReload(t *testing.T) {
	good, err := os.ReadFile(nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(nodeConfig, good, 0o644)
		daemon.Signal(syscall.SIGHUP)
	})
	hup := func(content string, wantDecision string) {
		t.Helper()
		before := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": wantDecision}))
		if err := os.WriteFile(nodeConfig, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := daemon.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		err := testbed.Poll(10*time.Second, func() error {
			if n := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": wantDecision})); n <= before {
				return fmt.Errorf("no new %s reload record", wantDecision)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pod := newPod(t, enforcedNS)

	// The untrusted digest joins the allow list.
	hup(string(good)+"      - "+env.Untrusted.Digest+"\n", "accepted")
	if _, err := pod.Create(testbed.ContainerSpec{Name: "allowed-after-hup", Image: env.Untrusted.Ref}); err != nil {
		t.Fatalf("the reloaded allow list was not applied: %v", err)
	}
	// A malformed config: refused, and the allow list in force stays.
	hup(string(good)+"  - namespce: typo\n", "refused")
	if _, err := pod.Create(testbed.ContainerSpec{Name: "still-allowed", Image: env.Untrusted.Ref}); err != nil {
		t.Fatalf("a refused reload changed what is in force: %v", err)
	}
	rec := daemon.AuditRecords(map[string]string{"event": "reload", "decision": "refused"})
	if len(rec) == 0 || !strings.Contains(fmt.Sprint(rec[len(rec)-1]["reason"]), "namespce") {
		t.Errorf("the refused reload does not say why: %v", rec)
	}
}
