//go:build !nodeonly && !nodaemon

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

func trustedRootFile(t *testing.T, s *testsigstore.Sigstore) string {
	t.Helper()
	tr, err := s.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, tr, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWitnessCreateSigstore(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	root := trustedRootFile(t, s)
	bf := filepath.Join(t.TempDir(), "bundle.yaml")
	out := mustRun(t, "witness", "create", "--bundle", bf, "--name", "ci-keyless", "--kind", "sigstore", "--trusted-root", root,
		"--issuer", "https://token.actions.githubusercontent.com", "--subject-regexp", `^https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*$`)
	if !strings.Contains(out, `witness "ci-keyless" created: keyless Sigstore, trust sigstore:sha256:`) {
		t.Errorf("output %q", out)
	}
	mustRun(t, "policy", "create", "--bundle", bf, "--name", "prod", "--witness", "ci-keyless", "--cluster", "c1", "--namespace", "default")
	data, err := os.ReadFile(bf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle(bf, data)
	if err != nil {
		t.Fatalf("the written bundle does not parse: %v\n%s", err, data)
	}
	w := b.Witness("ci-keyless")
	if w == nil || w.Kind != policy.WitnessSigstore || w.Sigstore.Identities[0].Issuer != "https://token.actions.githubusercontent.com" {
		t.Fatalf("witness %+v", w)
	}
	show := mustRun(t, "witness", "show", "--bundle", bf, "ci-keyless")
	for _, want := range []string{"Kind:         sigstore (keyless)", "Trust:        " + w.Keys[0].Fingerprint, `Subject:      regexp ^https://github\.com/example/app/`} {
		if !strings.Contains(show, want) {
			t.Errorf("witness show lacks %q:\n%s", want, show)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kind", "sigstore", "--issuer", "i", "--subject", "s"}, "--trusted-root is required"},
		{[]string{"--kind", "sigstore", "--trusted-root", root, "--subject", "s"}, "identities[0]: no issuer"},
		{[]string{"--kind", "sigstore", "--trusted-root", root, "--issuer", "i", "--subject-regexp", "app"}, `subjectRegExp: must be anchored, ^...$, so that it matches the whole value; write "^app$"`},
		{[]string{"--kind", "sigstore", "--trusted-root", root, "--issuer", "i", "--subject", "s", "--key", "x.pub"}, "a witness of kind sigstore has no key"},
		{[]string{"--trusted-root", root, "--issuer", "i", "--subject", "s"}, "add --kind sigstore"},
		{[]string{"--kind", "x", "--key", "x.pub"}, `--kind "x"`},
		{[]string{"--kind", "sigstore", "--trusted-root", bf, "--issuer", "i", "--subject", "s"}, "trustedRoot: not a JSON trusted root"},
	} {
		_, errOut, err := run(t, append([]string{"witness", "create", "--bundle", bf, "--name", "other"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error()+errOut, tc.want) {
			t.Errorf("witness create %v: %v %s; want %q", tc.args, err, errOut, tc.want)
		}
	}
	// A keyless witness may keep its signatures in another repository too.
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "elsewhere", "--kind", "sigstore", "--trusted-root", root,
		"--issuer", "https://accounts.google.com", "--subject", "bot@example.com", "--signature-repository", "registry.example.com/team/signatures")
	data, _ = os.ReadFile(bf)
	if b, err = policy.ParseBundle(bf, data); err != nil || b.Witness("elsewhere").SignatureRepository != "registry.example.com/team/signatures" {
		t.Fatalf("witness with a signature repository: %v %+v", err, b.Witness("elsewhere"))
	}
	// The same trust twice is refused like a key in two witnesses.
	_, _, err = run(t, "witness", "create", "--bundle", bf, "--name", "copy", "--kind", "sigstore", "--trusted-root", root,
		"--issuer", "https://token.actions.githubusercontent.com", "--subject-regexp", `^https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*$`)
	if err == nil || !strings.Contains(err.Error(), `is already a key of witness "ci-keyless"`) {
		t.Errorf("duplicate trust: %v", err)
	}
}

func TestVerifyKeyless(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	root := trustedRootFile(t, s)
	host := startRegistry(t)
	ref := host + "/app:v1"
	digest := push(t, ref, randomImage(t))
	img, err := name.NewDigest(host + "/app@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	const signer, issuer = "release@example.com", "https://accounts.example.com"
	for _, pt := range []string{testsigstore.CosignSignPredicateType, "https://slsa.dev/provenance/v1"} {
		b, err := s.Sign(signer, issuer, testsigstore.Statement(host+"/app", digest, pt), testsigstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := testsigstore.Attach(img, b); err != nil {
			t.Fatal(err)
		}
	}

	out, code := runCLI(t, "verify", "--trusted-root", root, "--issuer", issuer, "--subject", signer, ref)
	if code != 0 || !strings.Contains(out, "Verified "+digest+": signed by sigstore "+issuer+" "+signer) {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
	if !strings.Contains(out, "is an attestation, not an image signature") {
		t.Errorf("the attestation is not reported as refused:\n%s", out)
	}
	out, code = runCLI(t, "verify", "--trusted-root", root, "--issuer", issuer, "--subject", "intruder@example.com", ref)
	if code != 1 || !strings.Contains(out, `expected SAN value "intruder@example.com", got "release@example.com"`) {
		t.Fatalf("verify with another subject (exit %d), want 1 with the SAN reason:\n%s", code, out)
	}
	out, code = runCLI(t, "verify", "--trusted-root", root, "--issuer", issuer, ref)
	if code != 2 || !strings.Contains(out, "no subject") {
		t.Fatalf("verify without a subject (exit %d), want a usage error:\n%s", code, out)
	}
}

func TestVerifyLegacyKeyless(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	root := trustedRootFile(t, s)
	host := startRegistry(t)
	ref := host + "/legacy:v1"
	digest := push(t, ref, randomImage(t))
	img, err := name.NewDigest(host + "/legacy@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.SignLegacy("release@example.com", "https://accounts.example.com", host+"/legacy", digest, testsigstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testsigstore.AttachLegacy(img, []*testsigstore.Legacy{l}); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "verify", "--trusted-root", root, "--issuer", "https://accounts.example.com", "--subject", "release@example.com", ref)
	if code != 0 || !strings.Contains(out, "cosign-simplesigning") {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
}
