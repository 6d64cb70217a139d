package daemon

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

const (
	unsignedDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	exemptDigest   = "sha256:3f0e1b6c5d4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
	revokedDigest  = "sha256:0d1c2b3a49586776a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e"
)

func exampleBundle(t *testing.T) *policy.Bundle {
	t.Helper()
	data, err := os.ReadFile("../../examples/policy-bundle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle("policy-bundle.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newDecider(t *testing.T, node *nodeconfig.Config, b *policy.Bundle) *decider {
	st := verify.NewStore(nil) // no sources: every image is unsigned
	return &decider{node: node, bundle: b, sigs: st, fetch: newPrefetcher(st),
		now: func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }}
}

func subject(ns, digest string) policy.Subject {
	return policy.Subject{Namespace: ns, Pod: "p", Container: "c", ConfigDigest: "sha256:" + strings.Repeat("c", 64), ImageDigests: []string{digest}}
}

func TestDecideAllowlistThenBundle(t *testing.T) {
	node := nodeconfig.Default()
	node.Cluster = "prod-1"
	node.Allowlists = policy.Allowlists{"payments": {unsignedDigest}, "kube-system": {unsignedDigest}}
	d := newDecider(t, node, exampleBundle(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for name, tc := range map[string]struct {
		s        policy.Subject
		allowed  bool
		rule     string
		contains string
	}{
		"allow-listed digest in a covered namespace": {subject("payments", unsignedDigest), true, "allowlist", ""},
		"unsigned in a covered namespace":            {subject("default", unsignedDigest), false, "policy/production", "no signatures found"},
		"exemption":                                  {subject("payments", exemptDigest), true, "exemption/inc-4711-hotfix", ""},
		"revoked digest":                             {subject("dev", revokedDigest), false, "revocation/ci-runner-compromise", ""},
		"allow list covers, bundle does not":         {subject("kube-system", "sha256:"+strings.Repeat("9", 64)), false, "allowlist", "not on the allow list"},
		"nothing covers":                             {subject("dev", unsignedDigest), true, "uncovered", ""},
	} {
		t.Run(name, func(t *testing.T) {
			v := d.Decide(ctx, tc.s)
			if v.Allowed() != tc.allowed || v.RuleName() != tc.rule || !strings.Contains(v.Reason, tc.contains) {
				t.Errorf("verdict = %+v; want allowed=%v rule=%s reason containing %q", v, tc.allowed, tc.rule, tc.contains)
			}
		})
	}
}

func TestDecideWithoutBundleFailsClosed(t *testing.T) {
	node := nodeconfig.Default()
	node.Allowlists = policy.Allowlists{"kube-system": {unsignedDigest}}
	d := newDecider(t, node, nil)
	d.bundleMissing = true
	if v := d.Decide(context.Background(), subject("dev", "sha256:"+strings.Repeat("2", 64))); v.Allowed() || v.RuleName() != "no-bundle" {
		t.Errorf("no bundle in force: %+v, want a refusal", v)
	}
	if v := d.Decide(context.Background(), subject("kube-system", unsignedDigest)); !v.Allowed() {
		t.Errorf("an allow-listed system image was refused while no bundle is in force: %+v", v)
	}
}

func TestDecideUncoveredDeny(t *testing.T) {
	node := nodeconfig.Default()
	node.UncoveredDeny = true
	if v := newDecider(t, node, nil).Decide(context.Background(), subject("dev", unsignedDigest)); v.Allowed() || v.RuleName() != "uncovered" {
		t.Errorf("uncovered: deny without a bundle: %+v", v)
	}
	node.Cluster = "prod-1"
	if v := newDecider(t, node, exampleBundle(t)).Decide(context.Background(), subject("dev", unsignedDigest)); v.Allowed() {
		t.Errorf("uncovered: deny with a bundle: %+v", v)
	}
}

func BenchmarkDecideCacheHit(b *testing.B) {
	node := nodeconfig.Default()
	node.Cluster = "prod-1"
	t := &testing.T{}
	d := newDecider(t, node, exampleBundle(t))
	s := subject("default", unsignedDigest)
	d.Decide(context.Background(), s) // the store now knows the digest
	b.ReportAllocs()
	for b.Loop() {
		d.Decide(context.Background(), s)
	}
}

// countingFetcher finds no signatures and counts how often it was asked.
type countingFetcher struct{ calls atomic.Int32 }

func (c *countingFetcher) Fetch(context.Context, name.Digest) ([]signature.Manifest, error) {
	c.calls.Add(1)
	return nil, nil
}

// A refused image looks for new signatures once what the node holds is older
// than refreshAfter: an image signed after it landed runs at kubelet's retry.
func TestRefusedImageLooksAgainForSignatures(t *testing.T) {
	node := nodeconfig.Default()
	node.Cluster = "prod-1"
	f := &countingFetcher{}
	st := verify.NewStore(nil, f)
	d := &decider{node: node, bundle: exampleBundle(t), sigs: st, fetch: newPrefetcher(st), now: time.Now, refreshAfter: time.Hour}
	s := subject("default", unsignedDigest)
	s.Repositories = map[string][]string{unsignedDigest: {"registry.example/app"}}
	ask := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if v := d.Decide(ctx, s); v.Allowed() {
			t.Fatalf("unsigned image allowed: %+v", v)
		}
	}
	ask()
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("first decision fetched %d times, want 1", n)
	}
	ask()
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("fresh signatures were fetched again (%d fetches)", n)
	}
	d.refreshAfter = time.Nanosecond
	ask()
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("stale signatures of a refused image were not fetched again (%d fetches)", n)
	}
}
