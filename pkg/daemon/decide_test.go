package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/bundletest"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// downRegistry is a signature source that cannot be reached.
type downRegistry struct{}

func (downRegistry) Fetch(context.Context, name.Digest) ([]signature.Manifest, error) {
	return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

// unsignedRegistry answers: no signatures.
type unsignedRegistry struct{}

func (unsignedRegistry) Fetch(context.Context, name.Digest) ([]signature.Manifest, error) {
	return nil, nil
}

// A refusal during a registry outage says the signatures could not be read,
// not "sign the image"; a refusal of an image that has no signature says to
// sign it.
func TestRefusalSaysWhenSignaturesCouldNotBeRead(t *testing.T) {
	b, err := policy.ParseBundle("bundle.yaml", []byte(bundletest.Fill(t, bundletest.ValidBundle)))
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("e", 64)
	subject := policy.Subject{Namespace: "default", Pod: "web", ConfigDigest: "sha256:" + strings.Repeat("c", 64),
		ImageDigests: []string{digest}, Repositories: map[string][]string{digest: {"registry.example/app"}}}
	for _, tc := range []struct {
		name    string
		src     verify.SignatureFetcher
		want    string
		wantNot string
	}{
		{"registry down", downRegistry{}, unreadableHint, policy.MissingSignatureHint},
		{"not signed", unsignedRegistry{}, policy.MissingSignatureHint, unreadableHint},
	} {
		node := nodeconfig.Default()
		node.Cluster = "c1"
		sigs := verify.NewStore(nil, tc.src)
		d := &decider{node: node, bundle: b, sigs: sigs, fetch: newPrefetcher(sigs), now: func() time.Time {
			return time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v := d.Decide(ctx, subject)
		cancel()
		if v.Allowed() || v.Kind != policy.RulePolicy {
			t.Fatalf("%s: verdict = %v; want a refusal by a policy", tc.name, v)
		}
		if !strings.Contains(v.Reason, tc.want) || strings.Contains(v.Reason, tc.wantNot) {
			t.Errorf("%s: reason = %q; want %q and not %q", tc.name, v.Reason, tc.want, tc.wantNot)
		}
	}
}

// DecideNow gives Decide's verdict when it needs nothing it would wait for,
// and declines (the plugin then asks Decide) when a covering policy needs
// signatures not looked up yet or refuses.
func TestDecideNowAgreesWithDecide(t *testing.T) {
	b, err := policy.ParseBundle("bundle.yaml", []byte(bundletest.Fill(t, bundletest.ValidBundle)))
	if err != nil {
		t.Fatal(err)
	}
	listed, unsigned := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("e", 64)
	node := nodeconfig.Default()
	node.Cluster = "c1"
	node.Allowlists = policy.Allowlists{"default": {listed}}
	sigs := verify.NewStore(nil, unsignedRegistry{})
	d := &decider{node: node, bundle: b, sigs: sigs, fetch: newPrefetcher(sigs), now: time.Now}
	subject := func(ns, digest string) policy.Subject {
		return policy.Subject{Namespace: ns, Pod: "web", ConfigDigest: "sha256:" + strings.Repeat("c", 64),
			ImageDigests: []string{digest}, Repositories: map[string][]string{digest: {"registry.example/app"}}}
	}
	decide := func(s policy.Subject) policy.Verdict {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return d.Decide(ctx, s)
	}

	if _, ok := d.DecideNow(subject("default", unsigned)); ok {
		t.Error("decided at once on signatures never looked up")
	}
	if v := decide(subject("default", unsigned)); v.Allowed() {
		t.Fatalf("unsigned image allowed: %v", v)
	}
	if v, ok := d.DecideNow(subject("default", unsigned)); ok {
		t.Errorf("a refusal by a policy was decided at once (%v): Decide looks again and explains it", v)
	}
	for _, s := range []policy.Subject{subject("default", listed), subject("uncovered", unsigned)} {
		now, ok := d.DecideNow(s)
		if !ok {
			t.Errorf("%s %s: not decided at once", s.Namespace, s.ImageDigests[0])
			continue
		}
		if want := decide(s); now.Decision != want.Decision || now.Kind != want.Kind || now.Reason != want.Reason || !now.Allowed() {
			t.Errorf("%s: DecideNow = %v, Decide = %v", s.Namespace, now, want)
		}
	}
}
