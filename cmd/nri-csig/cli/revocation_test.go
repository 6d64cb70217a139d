//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// TestRevocationByContent: --image resolves the reference in the registry
// and records the config digests the manifest (or each manifest of an
// index) names; --config-digest gives them offline.
func TestRevocationByContent(t *testing.T) {
	host := startRegistry(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	imgDigest, _ := img.Digest()
	imgConfig, _ := img.ConfigName()
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	idxRef, _ := name.ParseReference(host + "/multi:v1")
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	var idxConfigs []string
	for _, m := range im.Manifests {
		child, _ := idx.Image(m.Digest)
		c, _ := child.ConfigName()
		idxConfigs = append(idxConfigs, c.String())
	}

	dir := t.TempDir()
	bf := filepath.Join(dir, "b.yaml")
	_, pub := testKeyPair(t, dir, "w")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "w", "--key", pub)
	_, errOut, err := run(t, "revocation", "create", "--bundle", bf, "--name", "by-ref", "--image", host+"/app@"+imgDigest.String(), "--reason", "bad")
	if err != nil || !strings.Contains(errOut, imgConfig.String()) {
		t.Fatalf("revocation create --image = %v, stderr %q", err, errOut)
	}
	mustRun(t, "revocation", "create", "--bundle", bf, "--name", "by-tag", "--image", host+"/multi:v1", "--reason", "bad index")
	mustRun(t, "revocation", "create", "--bundle", bf, "--name", "offline", "--image-digest", testDigest,
		"--config-digest", "sha256:"+strings.Repeat("5", 64), "--reason", "offline")
	_, errOut, err = run(t, "revocation", "create", "--bundle", bf, "--name", "bare", "--image-digest", "sha256:"+strings.Repeat("6", 64), "--reason", "bare")
	if err != nil || !strings.Contains(errOut, "only these exact digests are revoked") {
		t.Errorf("a bare --image-digest did not warn: %v, stderr %q", err, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--config-digest", testDigest, "--reason", "r"}, "at least one of the flags"},
		{[]string{"--name", "x", "--key-fingerprint", "sha256:" + strings.Repeat("7", 64), "--config-digest", testDigest, "--reason", "r"}, "give --image-digest or --image too"},
		{[]string{"--name", "x", "--image-digest", testDigest, "--config-digest", "sha256:abc", "--reason", "r"}, "is not a digest"},
		{[]string{"--name", "x", "--image", host + "/absent:v1", "--reason", "r"}, "resolving it in the registry"},
	} {
		_, _, err := run(t, append([]string{"revocation", "create", "--bundle", bf}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("revocation create %v = %v; want %q", tc.args, err, tc.want)
		}
	}

	data, _ := os.ReadFile(bf)
	b, err := policy.ParseBundle(bf, data)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*policy.Revocation{}
	for _, r := range b.Revocations {
		got[r.Name] = r
	}
	if r := got["by-ref"]; r == nil || !slices.Equal(r.ImageDigests, []string{imgDigest.String()}) || !slices.Equal(r.ConfigDigests, []string{imgConfig.String()}) {
		t.Errorf("by-ref = %+v, want digest %s config %s", r, imgDigest, imgConfig)
	}
	if r := got["by-tag"]; r == nil || !slices.Equal(r.ImageDigests, []string{idxDigest.String()}) || !slices.Equal(r.ConfigDigests, idxConfigs) {
		t.Errorf("by-tag = %+v, want digest %s configs %v", r, idxDigest, idxConfigs)
	}
	if r := got["offline"]; r == nil || !slices.Equal(r.ConfigDigests, []string{"sha256:" + strings.Repeat("5", 64)}) {
		t.Errorf("offline = %+v", r)
	}
	if out := mustRun(t, "revocation", "list", "--bundle", bf); !strings.Contains(out, imgConfig.String()) {
		t.Errorf("revocation list does not show the config digest: %q", out)
	}
}
