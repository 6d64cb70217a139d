//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// Every decision is one journald record with CSIG_* fields an operator can
// filter on: journalctl -t nri-csig CSIG_DECISION=deny CSIG_NAMESPACE=...
func TestAuditRecordsInJournald(t *testing.T) {
	stopJournald, err := testbed.EnsureJournald()
	if err != nil {
		t.Fatal(err)
	}
	defer stopJournald()
	daemon.Stop()
	d, err := env.Containerd.StartDaemon(nodeConfig, "--audit", "journald")
	if err != nil {
		t.Fatalf("starting nri-csig with --audit journald: %v", err)
	}
	defer func() {
		d.Stop()
		restartDaemon(t)
	}()

	pod := newPod(t, enforcedNS)
	name := fmt.Sprintf("journald-%d", time.Now().UnixNano())
	_, err = pod.Create(testbed.ContainerSpec{Name: name, Image: env.Untrusted.Ref})
	mustBeRefused(t, pod, name, err, env.Untrusted.Digest)

	var rec map[string]any
	err = testbed.Poll(10*time.Second, func() error {
		out, err := testbed.Journal("SYSLOG_IDENTIFIER=nri-csig", "CSIG_DECISION=deny", "CSIG_CONTAINER="+name)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 || lines[0] == "" {
			return fmt.Errorf("journalctl found %d records, want 1: %s", len(lines), out)
		}
		return json.Unmarshal([]byte(lines[0]), &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"CSIG_EVENT": "create", "CSIG_NAMESPACE": enforcedNS, "CSIG_POD": pod.Name, "CSIG_DIGEST": env.Untrusted.Digest,
		"CSIG_CONFIG_DIGEST": env.Untrusted.ConfigDigest, "CSIG_IMAGE": env.Untrusted.Ref, "CSIG_RULE": "allowlist", "PRIORITY": "4",
	} {
		if rec[k] != want {
			t.Errorf("journald field %s = %v, want %q", k, rec[k], want)
		}
	}
	if msg, _ := rec["MESSAGE"].(string); !strings.Contains(msg, "create deny") || !strings.Contains(msg, "not on the allow list") {
		t.Errorf("MESSAGE = %q", rec["MESSAGE"])
	}
	if n := len(d.AuditRecords(nil)); n != 0 {
		t.Errorf("%d audit records went to the log file too; journald should have taken them", n)
	}
}
