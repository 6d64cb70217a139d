//go:build integration

package policy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// cosignVersion is the cosign the interop tests of integration/cosign run.
const cosignVersion = "v3.1.3"

// cosignCLI runs the real cosign offline (no transparency log, no Fulcio)
// with a throw-away home and the extra environment.
func cosignCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	bin, err := toolcache.Ensure(toolcache.Tool{Packages: []string{"github.com/sigstore/cosign/v3/cmd/cosign"}, Version: cosignVersion})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(work, "cosign-home")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "cosign"), args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"), "COSIGN_YES=true", "COSIGN_PASSWORD=test-password")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func tagExists(t *testing.T, ref string) bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(r)
	return err == nil
}

// TestCosignSignatureRepository: "cosign sign --key" with COSIGN_REPOSITORY
// stores the signature in a separate repository, in the legacy tag format
// and in the bundle format (tag fallback: the test registry has no
// referrers API). A witness with that key but no signatureRepository
// refuses the image, naming the repository it searched; once the witness
// names the signature repository, a newly pulled image signed the same way
// runs, and so does the refused one at its next look-up (kubelet's retry),
// without a daemon restart.
func TestCosignSignatureRepository(t *testing.T) {
	keyDir := t.TempDir()
	cosignCLI(t, nil, "generate-key-pair", "--output-key-prefix", filepath.Join(keyDir, "cosign"))
	priv, pub := filepath.Join(keyDir, "cosign.key"), filepath.Join(keyDir, "cosign.pub")
	sigs := env.Registry.Ref("team/sigs")
	cosignEnv := []string{"COSIGN_REPOSITORY=" + sigs}
	formats := map[string][]string{"legacy": {"--new-bundle-format=false"}, "bundle": nil}

	// signed pushes a distinct image, signs it with cosign into the
	// signature repository, and pulls it into containerd.
	signed := func(repoTag, marker string, extra []string) testbed.Image {
		t.Helper()
		img, err := testbed.BusyboxImage(env.Tools.Busybox, marker)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := env.Registry.Push(repoTag, img)
		if err != nil {
			t.Fatal(err)
		}
		ref := env.Registry.Ref(repoTag)
		byDigest := ref[:strings.LastIndex(ref, ":")] + "@" + digest
		args := append([]string{"sign", "--key", priv, "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--yes"}, extra...)
		cosignCLI(t, cosignEnv, append(args, byDigest)...)
		// Where cosign put it (its "Pushing signature to" line names the
		// image's repository in the bundle format, wrongly): the .sig tag,
		// or the referrers tag fallback, in the signature repository only.
		tag := "sha256-" + strings.TrimPrefix(digest, "sha256:")
		if len(extra) > 0 {
			tag += ".sig"
		}
		if !tagExists(t, sigs+":"+tag) || tagExists(t, ref[:strings.LastIndex(ref, ":")]+":"+tag) {
			t.Fatalf("cosign did not put %s in %s only", tag, sigs)
		}
		config, err := env.Containerd.Pull(ref)
		if err != nil {
			t.Fatal(err)
		}
		return testbed.Image{Ref: ref, Digest: digest, ConfigDigest: config}
	}

	editBundle(t, "witness", "create", "--name", "cosign-ci", "--key", pub, "--description", "cosign with COSIGN_REPOSITORY")
	editBundle(t, "policy", "create", "--name", "sigrepo", "--witness", "cosign-ci", "--cluster", "it", "--namespace", "sigrepo", "--enabled")
	t.Cleanup(func() {
		// Whatever step failed: drop what this test added, and sign.
		cli("policy", "delete", "sigrepo", "--bundle", bundle)
		cli("witness", "delete", "cosign-ci", "--bundle", bundle)
		mustCLI(t, "bundle", "sign", "--key", keyFile(bundleKey, "key"), "--bundle", bundle)
	})

	pod := newPod(t, "sigrepo")
	before := map[string]testbed.Image{}
	for f, extra := range formats {
		img := signed("sigrepo/before-"+f+":1", "sigrepo-before-"+f, extra)
		before[f] = img
		own := env.Registry.Ref("sigrepo/before-" + f)
		_, err := pod.Create(testbed.ContainerSpec{Name: "before-" + f, Image: img.Ref})
		want := img.Digest + ": no signatures found in " + own
		if err == nil || !strings.Contains(unquote(err), `policy "sigrepo"`) || !strings.Contains(unquote(err), want) {
			t.Fatalf("%s: created or refused without naming the repository searched: %v; want %q", f, err, want)
		}
		if strings.Contains(unquote(err), sigs) {
			t.Fatalf("without signatureRepository the node searched %s: %v", sigs, err)
		}
	}

	// The same witness, now naming the signature repository.
	editBundle(t, "policy", "delete", "sigrepo")
	editBundle(t, "witness", "delete", "cosign-ci")
	editBundle(t, "witness", "create", "--name", "cosign-ci", "--key", pub, "--signature-repository", sigs)
	editBundle(t, "policy", "create", "--name", "sigrepo", "--witness", "cosign-ci", "--cluster", "it", "--namespace", "sigrepo", "--enabled")
	if out := mustCLI(t, "witness", "show", "--bundle", bundle, "cosign-ci"); !strings.Contains(out, "Signatures:   in "+sigs) {
		t.Fatalf("witness show does not name the signature repository:\n%s", out)
	}

	for f, extra := range formats {
		img := signed("sigrepo/after-"+f+":1", "sigrepo-after-"+f, extra)
		id := mustRun(t, pod, "after-"+f, img)
		out, err := env.Containerd.Crictl("inspect", id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"nri-csig.io/witnesses": "cosign-ci"`) {
			t.Fatalf("the %s container is not marked as witnessed by cosign-ci:\n%s", f, out)
		}
	}
	// The images refused before are looked up again at a retry once their
	// signatures are older than the refresh age (30 s), now in the
	// signature repository too.
	for f, img := range before {
		err := testbed.Poll(90*time.Second, func() error {
			_, err := pod.Create(testbed.ContainerSpec{Name: "before-" + f, Image: img.Ref})
			return err
		})
		if err != nil {
			t.Fatalf("the %s image refused before signatureRepository was set is still refused: %v", f, err)
		}
	}
}
