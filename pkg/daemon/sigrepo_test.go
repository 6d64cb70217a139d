package daemon

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/bundletest"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// recordingRegistry answers "no signatures" and records the repositories asked.
type recordingRegistry struct {
	mu    sync.Mutex
	asked []string
}

func (r *recordingRegistry) Fetch(_ context.Context, image name.Digest) ([]signature.Manifest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, image.Context().Name())
	return nil, nil
}

// The decider searches the signature repository of a covering witness
// beside the image's own repository, and a refusal names both.
func TestSignatureRepositorySearchedAndNamed(t *testing.T) {
	text := strings.Replace(bundletest.ValidBundle, "  name: qa\nspec:\n", "  name: qa\nspec:\n  signatureRepository: registry.example/team/sigs\n", 1)
	b, err := policy.ParseBundle("bundle.yaml", []byte(bundletest.Fill(t, text)))
	if err != nil {
		t.Fatal(err)
	}
	node := nodeconfig.Default()
	node.Cluster = "c1"
	rec := &recordingRegistry{}
	d := &daemon{node: node, log: slog.New(slog.DiscardHandler)}
	d.sigs = verify.NewStore(nil, rec)
	d.fetch = newPrefetcher(d.sigs)
	dc := &decider{node: node, bundle: b, sigs: d.sigs, fetch: d.fetch, now: func() time.Time {
		return time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	}}
	dc.sigRepos = b.SignatureRepositories(node.Cluster)
	d.useSignatureRepositories(dc.sigRepos)

	digest := "sha256:" + strings.Repeat("e", 64)
	subject := policy.Subject{Namespace: "default", Pod: "web", ConfigDigest: "sha256:" + strings.Repeat("c", 64),
		ImageDigests: []string{digest}, Repositories: map[string][]string{digest: {"registry.example/app"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	v := dc.Decide(ctx, subject)
	cancel()
	if v.Allowed() {
		t.Fatalf("verdict %v; want a refusal", v)
	}
	rec.mu.Lock()
	asked := slices.Clone(rec.asked)
	rec.mu.Unlock()
	if !slices.Equal(asked, []string{"registry.example/app", "registry.example/team/sigs"}) {
		t.Fatalf("repositories asked = %v; want the image's, then the witness's signature repository", asked)
	}
	want := digest + ": no signatures found in registry.example/app, registry.example/team/sigs"
	if !strings.Contains(v.Reason, want) {
		t.Fatalf("reason = %q; want it to contain %q", v.Reason, want)
	}
}

func TestSearchRepositories(t *testing.T) {
	for _, tc := range []struct {
		own, sig, want []string
	}{
		{nil, []string{"r/sigs"}, nil}, // known by ID only: no registry at all
		{[]string{"r/app"}, nil, []string{"r/app"}},
		{[]string{"r/app", "r/sigs"}, []string{"r/sigs", "r/other"}, []string{"r/app", "r/sigs", "r/other"}},
	} {
		if got := searchRepositories(tc.own, tc.sig); !slices.Equal(got, tc.want) {
			t.Errorf("searchRepositories(%v, %v) = %v; want %v", tc.own, tc.sig, got, tc.want)
		}
	}
	many := []string{"a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "a/8"}
	if got := searchedText(many); got != " in a/1, a/2, a/3, a/4, a/5, a/6 and 2 more" {
		t.Errorf("searchedText = %q", got)
	}
}
