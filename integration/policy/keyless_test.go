//go:build integration

package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/testsigstore"
)

const (
	keylessSigner = "release@example.com"
	keylessIssuer = "https://accounts.example.com"
)

// keylessWitness adds a witness of kind sigstore (an offline test Sigstore's
// trusted root, one issuer and SAN) and a policy requiring it in namespace
// "keyless", and returns the Sigstore.
func keylessWitness(t *testing.T) *testsigstore.Sigstore {
	t.Helper()
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(root, tr, 0o644); err != nil {
		t.Fatal(err)
	}
	editBundle(t, "witness", "create", "--name", "keyless", "--kind", "sigstore", "--trusted-root", root,
		"--issuer", keylessIssuer, "--subject", keylessSigner, "--description", "keyless release pipeline")
	editBundle(t, "policy", "create", "--name", "keyless-required", "--witness", "keyless", "--cluster", "it", "--namespace", "keyless", "--enabled")
	t.Cleanup(func() {
		editBundle(t, "policy", "delete", "keyless-required")
		editBundle(t, "witness", "delete", "keyless")
	})
	return s
}

// keylessImage pushes a distinct busybox image to host (a loopback
// registry), attaches the bundles of s signed by subject over statements of
// each predicate type, as cosign v3 attaches them, and pulls it.
func keylessImage(t *testing.T, s *testsigstore.Sigstore, host, repo, subject string, predicateTypes ...string) testbed.Image {
	t.Helper()
	img, err := testbed.BusyboxImage(env.Tools.Busybox, repo)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repo+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	digest := ref.Context().Digest(d.String())
	for _, pt := range predicateTypes {
		b, err := s.Sign(subject, keylessIssuer, testsigstore.Statement(ref.Context().Name(), d.String(), pt), testsigstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := testsigstore.Attach(digest, b); err != nil {
			t.Fatal(err)
		}
	}
	config, err := env.Containerd.Pull(ref.String())
	if err != nil {
		t.Fatal(err)
	}
	return testbed.Image{Ref: ref.String(), Digest: d.String(), ConfigDigest: config}
}

// Keyless cosign v3 bundles, attached as a referrer (registry with the
// referrers API) or through the sha256-<hex> tag fallback (without it), are
// verified by the daemon against the witness's trusted root and identity:
// the right issuer and SAN run; a wrong SAN is refused with the reason;
// an attestation by the right identity never counts as a signature.
func TestKeylessSigstoreWitness(t *testing.T) {
	s := keylessWitness(t)
	referrers := startFaultyRegistry(t).host
	pod := newPod(t, "keyless")
	for _, reg := range []struct{ name, host string }{{"referrers", referrers}, {"tag-fallback", env.Registry.Host}} {
		t.Run(reg.name, func(t *testing.T) {
			good := keylessImage(t, s, reg.host, "keyless/good-"+reg.name, keylessSigner, testsigstore.CosignSignPredicateType)
			mustRun(t, pod, "keyless-good-"+reg.name, good)
			rec := waitRecord(t, map[string]string{"event": "create", "container": "keyless-good-" + reg.name})
			if rec["decision"] != "allow" || rec["policy"] != "keyless-required" || rec["witness"] != "keyless" {
				t.Errorf("audit record = %v", rec)
			}

			wrongSAN := keylessImage(t, s, reg.host, "keyless/intruder-"+reg.name, "intruder@example.com", testsigstore.CosignSignPredicateType)
			mustRefuse(t, pod, "keyless-intruder-"+reg.name, wrongSAN, `policy "keyless-required"`, wrongSAN.Digest,
				"certificate identity not trusted", `expected SAN value "release@example.com", got "intruder@example.com"`)

			att := keylessImage(t, s, reg.host, "keyless/attested-"+reg.name, keylessSigner, "https://slsa.dev/provenance/v1")
			mustRefuse(t, pod, "keyless-attested-"+reg.name, att, `policy "keyless-required"`, att.Digest,
				"is an attestation, not an image signature")
		})
	}
}

// A keyless cosign v2 signature (the sha256-<hex>.sig tag, with the
// certificate and the Rekor entry in the layer's annotations) counts for the
// sigstore witness too; a wrong SAN is refused with the reason.
func TestLegacyKeylessSigstoreWitness(t *testing.T) {
	s := keylessWitness(t)
	pod := newPod(t, "keyless")
	for _, tc := range []struct{ name, subject string }{{"legacy-good", keylessSigner}, {"legacy-intruder", "intruder@example.com"}} {
		img, err := testbed.BusyboxImage(env.Tools.Busybox, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := env.Registry.Push("keyless/"+tc.name+":1", img)
		if err != nil {
			t.Fatal(err)
		}
		ref := env.Registry.Ref("keyless/" + tc.name + ":1")
		l, err := s.SignLegacy(tc.subject, keylessIssuer, env.Registry.Host+"/keyless/"+tc.name, digest, testsigstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := name.NewDigest(env.Registry.Host+"/keyless/"+tc.name+"@"+digest, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := testsigstore.AttachLegacy(d, []*testsigstore.Legacy{l}); err != nil {
			t.Fatal(err)
		}
		config, err := env.Containerd.Pull(ref)
		if err != nil {
			t.Fatal(err)
		}
		image := testbed.Image{Ref: ref, Digest: digest, ConfigDigest: config}
		if tc.subject == keylessSigner {
			mustRun(t, pod, tc.name, image)
		} else {
			mustRefuse(t, pod, tc.name, image, `policy "keyless-required"`, `expected SAN value "release@example.com", got "intruder@example.com"`)
		}
	}
}
