//go:build !nodeonly && !nodaemon

package cli

import (
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/notationtest"
	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

const releaseIdentity = "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=release"

var releaseSubject = pkix.Name{Country: []string{"CN"}, Province: []string{"Zhejiang"}, Organization: []string{"Example"}, CommonName: "release"}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWitnessCreateX509(t *testing.T) {
	dir := t.TempDir()
	ca := x509test.NewCA(t, "release CA")
	leaf := ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	caFile := writeFile(t, dir, "ca.pem", x509test.PEM(ca.Cert))
	bundle := filepath.Join(dir, "bundle.yaml")

	out, code := runCLI(t, "witness", "create", "--name", "notary", "--kind", "x509", "--ca", caFile,
		"--trusted-identity", releaseIdentity, "--description", "release CA", "--bundle", bundle)
	if code != 0 || !strings.Contains(out, `witness "notary" created (kind x509, trust x509:sha256:`) || !strings.Contains(out, "CN=release CA") {
		t.Fatalf("witness create (%d):\n%s", code, out)
	}
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle(bundle, raw)
	if err != nil {
		t.Fatalf("the bundle written does not parse: %v\n%s", err, raw)
	}
	w := b.Witness("notary")
	if w.Kind != policy.WitnessX509 || w.X509.TrustedIdentities[0] != releaseIdentity || !w.X509.CACertificates[0].Equal(ca.Cert) {
		t.Fatalf("witness = %+v", w)
	}
	out, code = runCLI(t, "witness", "show", "notary", "--bundle", bundle)
	if code != 0 || !strings.Contains(out, "Identity:     "+releaseIdentity) || !strings.Contains(out, "Trust ID:     "+w.Keys[0].Fingerprint) {
		t.Fatalf("witness show (%d):\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kind", "x509", "--trusted-identity", releaseIdentity}, "kind x509 needs --ca"},
		{[]string{"--kind", "x509", "--ca", caFile}, "kind x509 needs --trusted-identity"},
		{[]string{"--kind", "x509", "--ca", caFile, "--trusted-identity", "CN=release"}, `write "x509.subject: C=<country>`},
		{[]string{"--kind", "x509", "--ca", writeFile(t, dir, "leaf.pem", x509test.PEM(leaf.Cert)), "--trusted-identity", "*"}, "neither a CA certificate nor a self-signed signing certificate"},
		{[]string{"--kind", "x509", "--ca", caFile, "--trusted-identity", "*", "--key", caFile}, "trusts certificates, not a key"},
		{[]string{"--ca", caFile, "--key", caFile}, "are for --kind x509"},
		{[]string{"--kind", "pgp"}, `--kind "pgp": use keys`},
		{[]string{"--kind", "x509", "--ca", caFile, "--trusted-identity", releaseIdentity}, "already a key of witness \"notary\""},
		{[]string{"--kind", "x509", "--ca", caFile, "--trusted-identity", "*"}, "is also trusted by witness \"notary\""},
	} {
		out, code := runCLI(t, append([]string{"witness", "create", "--name", "other", "--bundle", bundle}, c.args...)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %q:\n%s", c.args, code, c.want, out)
		}
	}
}

// attachNotation signs image as notation does and attaches the envelope as
// an OCI 1.1 referrer of artifactType application/vnd.cncf.notary.signature.
func attachNotation(t *testing.T, image name.Digest, size int64, leaf *x509test.Leaf) {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(image.DigestStr()), Size: size}
	env := notationtest.Sign(t, leaf, desc, signature.JWSMediaType)
	repo := image.Context()
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(env, types.MediaType(signature.JWSMediaType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	cd, _ := cfg.Digest()
	ld, _ := layer.Digest()
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  signature.NotationArtifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": signature.JWSMediaType, "digest": ld.String(), "size": len(env)}},
		"subject":       map[string]any{"mediaType": types.OCIManifestSchema1, "digest": image.DigestStr(), "size": size},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Digest(signature.DigestOf(raw)), rawOCIManifest(raw)); err != nil {
		t.Fatal(err)
	}
}

type rawOCIManifest []byte

func (r rawOCIManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawOCIManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func TestVerifyNotationSignature(t *testing.T) {
	dir := t.TempDir()
	host := startRegistryWithReferrers(t)
	img := randomImage(t)
	d := push(t, host+"/app:v1", img)
	size, _ := img.Size()
	ca, other := x509test.NewCA(t, "release CA"), x509test.NewCA(t, "other CA")
	leaf := ca.Leaf(t, releaseSubject, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	ref, err := name.NewDigest(host + "/app@" + d)
	if err != nil {
		t.Fatal(err)
	}
	attachNotation(t, ref, size, leaf)
	caFile := writeFile(t, dir, "ca.pem", x509test.PEM(ca.Cert))
	otherFile := writeFile(t, dir, "other.pem", x509test.PEM(other.Cert))

	out, code := runCLI(t, "verify", "--ca", caFile, "--trusted-identity", releaseIdentity, host+"/app:v1")
	if code != 0 || !strings.Contains(out, "Verified "+d) || !strings.Contains(out, "notation") {
		t.Fatalf("right identity (%d):\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ca", caFile, "--trusted-identity", "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=someone else"}, "does not match the X.509 trusted identities"},
		{[]string{"--ca", otherFile, "--trusted-identity", releaseIdentity}, "does not contain any trusted certificate"},
	} {
		out, code := runCLI(t, append(append([]string{"verify"}, c.args...), host+"/app:v1")...)
		if code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s", c.args, code, c.want, out)
		}
	}
	// A public key does not verify a Notary Project signature.
	_, pub := genKey(t, "k")
	if out, code := runCLI(t, "verify", "--key", pub, host+"/app:v1"); code != 1 {
		t.Errorf("--key verified a notation signature (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, "verify", host+"/app:v1"); code != 2 || !strings.Contains(out, "--ca and --trusted-identity") {
		t.Errorf("no key, no CA: exit %d:\n%s", code, out)
	}
}

func startRegistryWithReferrers(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// A CA rotation: the witness trusts the old and the new CA, then the new
// one only, while the policy naming it stays.
func TestWitnessSetTrustRotatesTheCA(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := x509test.NewCA(t, "CA 2025"), x509test.NewCA(t, "CA 2026")
	bundle := filepath.Join(dir, "bundle.yaml")
	oldFile := writeFile(t, dir, "old.pem", x509test.PEM(oldCA.Cert))
	both := writeFile(t, dir, "both.pem", x509test.PEM(oldCA.Cert, newCA.Cert))
	newFile := writeFile(t, dir, "new.pem", x509test.PEM(newCA.Cert))
	mustRun(t, "witness", "create", "--name", "notary", "--kind", "x509", "--ca", oldFile, "--trusted-identity", releaseIdentity, "--bundle", bundle)
	mustRun(t, "policy", "create", "--name", "prod", "--witness", "notary", "--cluster", "*", "--namespace", "*", "--enabled", "--bundle", bundle)
	trusts := func() []string {
		raw, err := os.ReadFile(bundle)
		if err != nil {
			t.Fatal(err)
		}
		b, err := policy.ParseBundle(bundle, raw)
		if err != nil {
			t.Fatal(err)
		}
		var cns []string
		for _, c := range b.Witness("notary").X509.CACertificates {
			cns = append(cns, c.Subject.CommonName)
		}
		if p := b.Policy("prod"); p == nil || p.Witnesses[0] != "notary" {
			t.Fatalf("the policy changed: %+v", p)
		}
		return cns
	}
	for _, step := range []struct {
		file string
		want string
	}{{both, "CA 2025,CA 2026"}, {newFile, "CA 2026"}} {
		out := mustRun(t, "witness", "set-trust", "notary", "--ca", step.file, "--trusted-identity", releaseIdentity, "--bundle", bundle)
		if !strings.Contains(out, `witness "notary" now trusts x509:sha256:`) {
			t.Fatalf("set-trust: %s", out)
		}
		if got := strings.Join(trusts(), ","); got != step.want {
			t.Fatalf("CAs = %s, want %s", got, step.want)
		}
	}
	_, pub := genKey(t, "k")
	mustRun(t, "witness", "create", "--name", "keys", "--key", pub, "--bundle", bundle)
	if out, code := runCLI(t, "witness", "set-trust", "keys", "--ca", newFile, "--trusted-identity", "*", "--bundle", bundle); code == 0 || !strings.Contains(out, "is of kind keys, not x509") {
		t.Errorf("set-trust on a keys witness (%d): %s", code, out)
	}
}

// A Notary Project signature made with an Alibaba Cloud KMS key (RSA 2048,
// RSA_PSS_SHA_256) and a certificate issued for its public half verifies
// against an x509 witness of the certificate's CA.
func TestSignNotationWithKMS(t *testing.T) {
	fake := startFakeKMS(t)
	host := startRegistryWithReferrers(t)
	image := host + "/kms-notation:v1"
	d := push(t, image, randomImage(t))
	dir := t.TempDir()
	ca := x509test.NewCA(t, "release CA")
	cert := ca.Issue(t, releaseSubject, fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	chainFile := writeFile(t, dir, "chain.pem", x509test.PEM(cert, ca.Cert))
	caFile := writeFile(t, dir, "ca.pem", x509test.PEM(ca.Cert))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.KeyRSA + "?version=" + kmsfake.VersionRSA
	endpoint := "http://" + fake.Endpoint

	out, code := runCLI(t, "sign", "--format", "notation", "--certificate-chain", chainFile, "--key", ref,
		"--signature-algorithm", "RSA_PSS_SHA_256", "--kms-endpoint", endpoint, image)
	if code != 0 || !strings.Contains(out, "Signed manifest "+d+" (Notary Project signature)") {
		t.Fatalf("sign --format notation (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, "verify", "--ca", caFile, "--trusted-identity", releaseIdentity, image); code != 0 || !strings.Contains(out, "notation") {
		t.Fatalf("verify (%d):\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "notation", "--key", ref}, "needs --certificate-chain"},
		{[]string{"--format", "notation", "--certificate-chain", chainFile, "--key", ref}, "signs RSA keys with PSS"},
		{[]string{"--certificate-chain", chainFile, "--key", ref}, "--certificate-chain is for --format notation"},
		{[]string{"--format", "pgp", "--key", ref}, `--format "pgp": use cosign or notation`},
	} {
		out, code := runCLI(t, append(append([]string{"sign", "--kms-endpoint", endpoint}, c.args...), image)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %q:\n%s", c.args, code, c.want, out)
		}
	}
}
