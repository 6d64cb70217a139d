package plugin

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// fixedDecider returns the verdict set for a namespace.
type fixedDecider struct {
	mu sync.Mutex
	v  map[string]policy.Verdict
}

func (f *fixedDecider) Decide(_ context.Context, s policy.Subject) policy.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v[s.Namespace]
}

type stopRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *stopRecorder) Stop(_ context.Context, id, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

func newAuditedPlugin(d Decider, stopper Stopper) (*Plugin, *audit.Memory) {
	mem := &audit.Memory{}
	return New(d, fakeImages{digests: []string{trustedDigest}}, slog.New(slog.DiscardHandler),
		Options{DecisionTimeout: time.Second, Audit: mem, Stopper: stopper}), mem
}

func ctr(id, name string) *api.Container {
	return &api.Container{Id: id, Name: name, PodSandboxId: "pod1", State: api.ContainerState_CONTAINER_RUNNING,
		Image: &api.Image{Name: "reg/app:1", ConfigDigest: configDigest}}
}

var pod1 = &api.PodSandbox{Id: "pod1", Name: "web", Namespace: "prod"}

func TestCreateContainerAnnotatesTrustedImage(t *testing.T) {
	d := &fixedDecider{v: map[string]policy.Verdict{"prod": {Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Trusted: true,
		Witnesses: []string{"ci", "sec"}, Digest: trustedDigest}}}
	p, mem := newAuditedPlugin(d, nil)
	adj, _, err := p.CreateContainer(context.Background(), pod1, ctr("c1", "app"))
	if err != nil {
		t.Fatal(err)
	}
	got := adj.GetAnnotations()
	for k, want := range map[string]string{AnnotationTrusted: "true", AnnotationWitnesses: "ci,sec", AnnotationVerdict: "allow by policy/prod", AnnotationDigest: trustedDigest} {
		if got[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, got[k], want)
		}
	}
	if len(mem.Snapshot()) != 0 {
		t.Errorf("CreateContainer wrote audit records; validation writes the one record")
	}
	// Validation reuses the early verdict: one record, allowed.
	if err := p.ValidateContainerAdjustment(context.Background(), &api.ValidateContainerAdjustmentRequest{Pod: pod1, Container: ctr("c1", "app")}); err != nil {
		t.Fatal(err)
	}
	if recs := mem.Snapshot(); len(recs) != 1 || recs[0].Decision != "allow" || recs[0].Witness != "ci,sec" {
		t.Errorf("audit records = %+v, want one allow naming the witnesses", recs)
	}
}

func TestCreateContainerNeverRefuses(t *testing.T) {
	d := &fixedDecider{v: map[string]policy.Verdict{"prod": {Decision: policy.Deny, Kind: policy.RulePolicy, Policy: "prod", Reason: "unsigned"}}}
	p, _ := newAuditedPlugin(d, nil)
	adj, _, err := p.CreateContainer(context.Background(), pod1, ctr("c1", "app"))
	if err != nil || adj != nil {
		t.Fatalf("CreateContainer = %v, %v; the refusal belongs to validation", adj, err)
	}
	err = p.ValidateContainerAdjustment(context.Background(), &api.ValidateContainerAdjustmentRequest{Pod: pod1, Container: ctr("c1", "app")})
	if err == nil || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("validation = %v, want the refusal", err)
	}
}

func TestAuditModeViolationsAreRecorded(t *testing.T) {
	d := &fixedDecider{v: map[string]policy.Verdict{"prod": {Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod",
		Violations: []policy.Violation{{Policy: "strict", Reason: "witness sec has not signed"}}}}}
	p, mem := newAuditedPlugin(d, nil)
	if err := p.ValidateContainerAdjustment(context.Background(), &api.ValidateContainerAdjustmentRequest{Pod: pod1, Container: ctr("c1", "app")}); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range mem.Snapshot() {
		if r.Decision == "would-deny" && r.Policy == "strict" && r.Mode == "audit" && strings.Contains(r.Reason, "would refuse") {
			found = true
		}
	}
	if !found {
		t.Errorf("no would-deny record: %+v", mem.Snapshot())
	}
}

func TestRejudgeReportsAndStopsUntrustedRunningContainers(t *testing.T) {
	d := &fixedDecider{v: map[string]policy.Verdict{"prod": {Decision: policy.Allow, Kind: policy.RuleAllowlist}}}
	stops := &stopRecorder{}
	p, mem := newAuditedPlugin(d, stops)
	p.background = func(f func()) { f() }
	p.Synchronize(context.Background(), []*api.PodSandbox{pod1}, []*api.Container{ctr("c1", "app"), ctr("c2", "side")})
	// The rules change: the same images are no longer trusted.
	d.mu.Lock()
	d.v["prod"] = policy.Verdict{Decision: policy.Deny, Kind: policy.RuleRevocation, Policy: "key", Reason: "key revoked"}
	d.mu.Unlock()
	if n := p.Rejudge(context.Background(), "bundle change"); n != 2 {
		t.Fatalf("Rejudge found %d untrusted containers, want 2", n)
	}
	stops.mu.Lock()
	if len(stops.ids) != 2 {
		t.Errorf("stopped %v, want c1 and c2", stops.ids)
	}
	stops.mu.Unlock()
	var stopped int
	for _, r := range mem.Snapshot() {
		if r.Event == "running" && r.Decision == "stopped" && strings.Contains(r.Reason, "key revoked") {
			stopped++
		}
	}
	if stopped != 2 {
		t.Errorf("%d 'running stopped' records, want 2: %+v", stopped, mem.Snapshot())
	}
	// A removed container is not judged again.
	p.RemoveContainer(context.Background(), pod1, ctr("c1", "app"))
	if n := p.Rejudge(context.Background(), "again"); n != 1 {
		t.Errorf("after removing c1, Rejudge found %d, want 1", n)
	}
}
