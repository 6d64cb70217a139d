//go:build integration

package notation

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

var releaseSubject = pkix.Name{Country: []string{"CN"}, Province: []string{"Zhejiang"}, Organization: []string{"Example"}, CommonName: "release"}

// notationKey configures a notation home whose default signing key is
// leaf (its key and chain in PEM files), as "notation key add" does, and
// returns the environment that makes the notation CLI use it.
func notationKey(t *testing.T, leaf *x509test.Leaf) []string {
	t.Helper()
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "signer.key"), filepath.Join(dir, "signer.crt")
	if err := os.WriteFile(keyFile, x509test.KeyPEM(t, leaf.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, x509test.PEM(leaf.Chain...), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := json.Marshal(map[string]any{
		"default": "signer",
		"keys":    []any{map[string]any{"name": "signer", "keyPath": keyFile, "certPath": certFile}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "notation"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notation", "signingkeys.json"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}
}

// notationSign signs ref (by digest) with the real notation CLI.
func notationSign(t *testing.T, env []string, ref string, flags ...string) {
	t.Helper()
	args := append([]string{"sign", "--insecure-registry"}, flags...)
	out, err := command(env, notation, append(args, ref)...)
	if err != nil || !strings.Contains(out, "Successfully signed") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// image is one test image in the registry.
type image struct {
	tag, digestRef, digest string
}

// newImage pushes a distinct busybox image as repo:1.
func newImage(t *testing.T, repo, marker string) image {
	t.Helper()
	img, err := testbed.BusyboxImage(tools.Busybox, marker)
	if err != nil {
		t.Fatal(err)
	}
	tag := host + "/" + repo + ":1"
	d, err := write(tag, img)
	if err != nil {
		t.Fatal(err)
	}
	return image{tag: tag, digestRef: host + "/" + repo + "@" + d, digest: d}
}

// hasReferrersTag reports whether the repository holds the sha256-<hex>
// tag that registries without the referrers API keep referrers under.
func hasReferrersTag(t *testing.T, img image) bool {
	t.Helper()
	ref, err := name.ParseReference(img.digestRef)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(ref.Context().Tag(strings.Replace(img.digest, ":", "-", 1)))
	return err == nil
}

// pull pulls the image into containerd: the daemon looks its signatures up
// then, before any container asks.
func pull(t *testing.T, img image) {
	t.Helper()
	if _, err := ctrd.Pull(img.tag); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, img image) {
	t.Helper()
	pod := ctrd.NewPod(t, namespace)
	if _, err := pod.Run(testbed.ContainerSpec{Name: "app", Image: img.tag}); err != nil {
		t.Fatalf("container from %s was refused: %v\n%s", img.tag, err, testbed.LastLines(daemon.Log(), 10))
	}
}

func mustRefuse(t *testing.T, img image, wants ...string) {
	t.Helper()
	pod := ctrd.NewPod(t, namespace)
	_, err := pod.Create(testbed.ContainerSpec{Name: "app", Image: img.tag})
	if err == nil {
		t.Fatalf("container from %s was created; want it refused", img.tag)
	}
	msg := strings.ReplaceAll(err.Error(), `\"`, `"`)
	t.Logf("refused: %s", msg)
	for _, w := range append([]string{"nri-csig: refused container"}, wants...) {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal does not mention %q:\n%s", w, msg)
		}
	}
}

// cliVerify runs "nri-csig verify" with the witness's trust, as on a laptop,
// and "nri-csig-cli verify" (which runs the nri-csig next to it for x509
// witnesses), which must say the same and succeed or fail alike.
func cliVerify(t *testing.T, img image) (string, error) {
	t.Helper()
	args := []string{"verify", "--ca", filepath.Join(work, "release-ca.pem"), "--trusted-identity", identity, img.tag}
	out, err := cli(args...)
	liteOnce.Do(func() { lite, liteErr = tools.BuildCLI() })
	if liteErr != nil {
		t.Fatal(liteErr)
	}
	liteOut, errLite := command(nil, lite, args...)
	if liteOut != out || (errLite == nil) != (err == nil) {
		t.Errorf("nri-csig-cli verify: %v\n%s\nnri-csig verify: %v\n%s\nwant the same verdict and output", errLite, liteOut, err, out)
	}
	return out, err
}

// lite is nri-csig-cli, built next to tools.NRICsig once.
var (
	liteOnce sync.Once
	lite     string
	liteErr  error
)

// A notation signature by a certificate of the witness's CA with the
// trusted identity admits the image, found through the referrers API or,
// on a registry without it, through the referrers tag.
func TestNotationSignatureAdmitted(t *testing.T) {
	signer := notationKey(t, ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))
	for _, c := range []struct {
		name, repo string
		flags      []string
		tag        bool
	}{
		{"referrers API", "ref/app", []string{"--force-referrers-tag=false"}, false},
		{"referrers tag", noReferrersPrefix + "app", nil, true},
		{"referrers tag after the API is not found", noReferrersPrefix + "fallback", []string{"--force-referrers-tag=false"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := newImage(t, c.repo, "admitted-"+c.repo)
			notationSign(t, signer, img.digestRef, c.flags...)
			if got := hasReferrersTag(t, img); got != c.tag {
				t.Fatalf("referrers tag present = %v, want %v", got, c.tag)
			}
			if out, err := cliVerify(t, img); err != nil || !strings.Contains(out, "Verified "+img.digest) {
				t.Fatalf("nri-csig verify: %v\n%s", err, out)
			}
			pull(t, img)
			mustRun(t, img)
		})
	}
}

// nri-csigd links no notation-go: it verified the x509 witness's signature
// in its child, the nri-csig beside it running cert-verifier, which it
// started on that first certificate verification.
func TestNodeDaemonVerifiesThroughItsChild(t *testing.T) {
	signer := notationKey(t, ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))
	img := newImage(t, "ref/child", "through-the-child")
	notationSign(t, signer, img.digestRef, "--force-referrers-tag=false")
	pull(t, img)
	mustRun(t, img)
	if n := daemon.Count("certificate verifier: process started"); n < 1 {
		t.Fatalf("the daemon never started its certificate verifier process; log:\n%s", testbed.LastLines(daemon.Log(), 20))
	}
	children, err := daemon.Children()
	if err != nil {
		t.Fatal(err)
	}
	var verifiers int
	for pid, argv := range children {
		if len(argv) == 3 && argv[2] == "cert-verifier" {
			verifiers++
			if argv[0] != tools.NRICsig {
				t.Errorf("child %d runs %s; want %s, the nri-csig beside %s", pid, argv[0], tools.NRICsig, tools.NRICsigd)
			}
		}
	}
	if verifiers != 1 {
		t.Fatalf("children %v; want one nri-csig cert-verifier", children)
	}
}

// The signatures the witness does not accept are refused, with the reason.
func TestNotationSignatureRefused(t *testing.T) {
	other := x509test.NewCA(t, "release CA") // the same name, another key
	expiresAt := time.Now().Add(5 * time.Second)
	cases := []struct {
		name   string
		leaf   *x509test.Leaf
		reason string
	}{
		{"wrong identity", ca.Leaf(t, pkix.Name{Country: []string{"CN"}, Province: []string{"Zhejiang"}, Organization: []string{"Example"}, CommonName: "intruder"},
			time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), "does not match the X.509 trusted identities"},
		{"another CA", other.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), "does not contain any trusted certificate"},
		{"expired certificate", ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), expiresAt), "it was expired at"},
	}
	imgs := make([]image, len(cases))
	for i, c := range cases {
		imgs[i] = newImage(t, "refused/"+strings.ToLower(strings.ReplaceAll(c.name, " ", "-")), "refused-"+c.name)
		notationSign(t, notationKey(t, c.leaf), imgs[i].digestRef, "--force-referrers-tag=false")
	}
	// The expired certificate was valid when it signed; wait (on the clock)
	// until it is not, before the node first sees the image.
	if err := testbed.Poll(30*time.Second, func() error {
		if time.Now().Before(expiresAt.Add(time.Second)) {
			return fmt.Errorf("the signing certificate has not expired yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pull(t, imgs[i])
			mustRefuse(t, imgs[i], imgs[i].digest, c.reason)
			if out, err := cliVerify(t, imgs[i]); err == nil || !strings.Contains(out, c.reason) {
				t.Errorf("nri-csig verify: %v, want it refused with %q:\n%s", err, c.reason, out)
			}
		})
	}
}

// A notation signature of an attestation attached to the image (an SBOM
// referrer) is the attestation's, not the image's: it never counts.
func TestNotationSignedAttestationDoesNotCount(t *testing.T) {
	signer := notationKey(t, ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))
	img := newImage(t, "ref/attested", "attested")
	sbom := attachSBOM(t, img)
	notationSign(t, signer, sbom, "--force-referrers-tag=false")
	pull(t, img)
	mustRefuse(t, img, img.digest, "no signatures found")
}

// attachSBOM attaches an SPDX document to img as an OCI 1.1 referrer and
// returns its manifest's digest reference.
func attachSBOM(t *testing.T, img image) string {
	t.Helper()
	ref, err := name.NewDigest(img.digestRef)
	if err != nil {
		t.Fatal(err)
	}
	repo := ref.Context()
	doc := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3","name":"attested"}`), "application/spdx+json")
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	if err := remote.WriteLayer(repo, doc); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, cfg); err != nil {
		t.Fatal(err)
	}
	dd, _ := doc.Digest()
	ds, _ := doc.Size()
	cd, _ := cfg.Digest()
	head, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  "application/spdx+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": "application/spdx+json", "digest": dd.String(), "size": ds}},
		"subject":       map[string]any{"mediaType": string(head.MediaType), "digest": img.digest, "size": head.Size},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := signature.DigestOf(raw)
	if err := remote.Put(repo.Digest(d), rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
	return repo.Name() + "@" + d
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// setTrust replaces the witness's trust store with caFile, signs the bundle
// and waits until the daemon has it in force.
func setTrust(t *testing.T, caFile string) {
	t.Helper()
	before := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "loaded"}))
	bundle := filepath.Join(work, "bundle.yaml")
	for _, args := range [][]string{
		{"witness", "set-trust", "notary", "--ca", caFile, "--trusted-identity", identity, "--bundle", bundle},
		{"bundle", "sign", "--key", filepath.Join(work, "bundle-signing.key"), "--bundle", bundle},
	} {
		if out, err := cli(args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	err := testbed.Poll(15*time.Second, func() error {
		if n := len(daemon.AuditRecords(map[string]string{"event": "reload", "decision": "loaded"})); n <= before {
			return fmt.Errorf("the daemon has not loaded the edited bundle (%d loads)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, testbed.LastLines(daemon.Log(), 10))
	}
}

// A CA rotation through a new bundle: an image signed under the new CA is
// refused until the witness's trust store holds it, and admitted from then
// on, with the policy unchanged; an image signed under the old CA, admitted
// before, stays admitted while both are trusted.
func TestTrustStoreRotation(t *testing.T) {
	// An image signed under the current CA, admitted before the rotation.
	current := newImage(t, "ref/before-rotation", "before-rotation")
	notationSign(t, notationKey(t, ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))), current.digestRef, "--force-referrers-tag=false")
	pull(t, current)
	mustRun(t, current)

	next := x509test.NewCA(t, "release CA 2027")
	img := newImage(t, "ref/rotated", "rotated")
	notationSign(t, notationKey(t, next.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))), img.digestRef, "--force-referrers-tag=false")
	pull(t, img)
	mustRefuse(t, img, "does not contain any trusted certificate")

	both := filepath.Join(t.TempDir(), "both.pem")
	if err := os.WriteFile(both, x509test.PEM(ca.Cert, next.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setTrust(t, filepath.Join(work, "release-ca.pem")) })
	setTrust(t, both)
	mustRun(t, img)
	mustRun(t, current) // still admitted: the old CA is in the new trust store too
}

// notationVerifyHome is a notation configuration that trusts ca for
// identity, for "notation verify".
func notationVerifyHome(t *testing.T, caPEM []byte) []string {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "notation", "truststore", "x509", "ca", "release")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "release-ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	policy, err := json.Marshal(map[string]any{
		"version": "1.0",
		"trustPolicies": []any{map[string]any{
			"name":                  "release",
			"registryScopes":        []string{"*"},
			"signatureVerification": map[string]any{"level": "strict", "override": map[string]string{"revocation": "skip"}},
			"trustStores":           []string{"ca:release"},
			"trustedIdentities":     []string{identity},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notation", "trustpolicy.json"), policy, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}
}

// An image signed in the Notary Project format by "nri-csig sign --format
// notation" with an Alibaba Cloud KMS key (RSA 2048, RSA_PSS_SHA_256, the
// local KMS endpoint) and a certificate issued for it verifies with the
// real notation CLI, and the x509 witness admits it on real containerd.
func TestKMSNotationSignatureVerifiesWithNotation(t *testing.T) {
	kms, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	kmsEnv := []string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID=" + kmsfake.AccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + kmsfake.AccessKeySecret,
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
	}
	cert := ca.Issue(t, releaseSubject, kms.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA), time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	chain := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(chain, x509test.PEM(cert, ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"ref/kms", noReferrersPrefix + "kms"} {
		t.Run(repo, func(t *testing.T) {
			img := newImage(t, repo, "kms-"+repo)
			out, err := command(kmsEnv, tools.NRICsig, "sign", "--format", "notation", "--certificate-chain", chain,
				"--key", "alikms://"+kmsfake.Region+"/"+kmsfake.KeyRSA+"?version="+kmsfake.VersionRSA, "--signature-algorithm", "RSA_PSS_SHA_256",
				"--kms-endpoint", "http://"+kms.Endpoint, img.tag)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out, err = command(notationVerifyHome(t, x509test.PEM(ca.Cert)), notation, "verify", "--insecure-registry", img.digestRef)
			if err != nil || !strings.Contains(out, "Successfully verified signature") {
				t.Fatalf("notation verify: %v\n%s", err, out)
			}
			pull(t, img)
			mustRun(t, img)
		})
	}
}
