package plugin

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/decision"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// The audit record names the digest containerd pulled when nothing on the
// allow list or signed decided, never the alphabetically first candidate,
// and carries no policy when no policy decided.
func TestAuditRecordNamesThePulledDigest(t *testing.T) {
	first := "sha256:" + strings.Repeat("0", 64) // a forged manifest of the same config would sort first
	pulled := "sha256:" + strings.Repeat("9", 64)
	mem := &audit.Memory{}
	d := &decision.Decider{Node: decision.Node{Allowlists: policy.Allowlists{"prod": {trustedDigest}}}}
	p := New(d, fakeImages{digests: []string{first, pulled}}, slog.New(slog.DiscardHandler), Options{Audit: mem, DecisionTimeout: time.Second})
	req := request("prod", &api.Image{Name: "reg/app:2", ConfigDigest: configDigest, Digest: pulled}, nil)
	req.Container.Id = "c-1"
	if err := p.ValidateContainerAdjustment(context.Background(), req); err == nil || !strings.Contains(err.Error(), "digest "+pulled) {
		t.Fatalf("refusal = %v, want one naming digest %s", err, pulled)
	}
	recs := mem.Snapshot()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Decision != "deny" || r.Rule != "allowlist" || r.Policy != "" || r.Digest != pulled || r.ContainerID != "c-1" || r.ConfigDigest != configDigest {
		t.Errorf("record = %+v, want deny by allowlist, no policy, digest %s, container id c-1", r, pulled)
	}

	// An invalid namespace is refused before the allow list, with its own rule.
	mem.Records = nil
	if err := p.ValidateContainerAdjustment(context.Background(), request("prod ", &api.Image{ConfigDigest: configDigest, Digest: trustedDigest}, nil)); err == nil ||
		!strings.Contains(err.Error(), "not a valid Kubernetes namespace") {
		t.Fatalf("refusal = %v, want an invalid-namespace refusal", err)
	}
	if recs := mem.Snapshot(); len(recs) != 1 || recs[0].Rule != "namespace" || recs[0].Digest != trustedDigest {
		t.Errorf("records = %+v, want one deny by namespace naming the pulled digest", recs)
	}
}
