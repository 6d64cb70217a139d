//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// TestSignKMSDedicatedGateway: through a dedicated gateway (which refuses
// management calls) a versioned reference signs, verifies and prints its public
// key, and no DescribeKey/ListKeyVersions reaches the gateway.
func TestSignKMSDedicatedGateway(t *testing.T) {
	fake, err := kmsfake.NewDedicated()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", kmsfake.AccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", kmsfake.AccessKeySecret)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	ca := filepath.Join(t.TempDir(), "PrivateKmsCA_kst-test.pem")
	if err := os.WriteFile(ca, fake.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	host := startRegistry(t)
	image := host + "/dedicated:v1"
	digest := push(t, image, randomImage(t))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA + "?version=" + kmsfake.VersionRSA
	kms := []string{"--key", ref, "--kms-endpoint", "https://" + fake.Endpoint, "--kms-ca", ca, "--kms-dedicated-gateway"}

	out, code := runCLI(t, append(append([]string{"sign"}, kms...), image)...)
	if code != 0 || !strings.Contains(out, digest) || !strings.Contains(out, "version:   "+kmsfake.VersionRSA+" of "+kmsfake.KeyRSA) {
		t.Fatalf("sign through a dedicated gateway = %d, %q; want the digest and the key version", code, out)
	}
	if out, code := runCLI(t, append(append([]string{"verify"}, kms...), image)...); code != 0 {
		t.Fatalf("verify through a dedicated gateway = %d, %q", code, out)
	}
	out, code = runCLI(t, append([]string{"public-key"}, kms...)...)
	want, _ := keys.MarshalPublicKeyPEM(fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA))
	if code != 0 || !strings.Contains(out, string(want)) {
		t.Fatalf("public-key through a dedicated gateway = %d, %q; want the version's PEM", code, out)
	}
	if n := fake.Calls("DescribeKey") + fake.Calls("ListKeyVersions"); n != 0 {
		t.Fatalf("%d management calls reached the dedicated gateway", n)
	}

	// Without ?version= there is nothing to sign with: a refusal, nothing asked.
	unversioned := "alikms://" + kmsfake.Region + "/" + kmsfake.KeyRSA
	out, code = runCLI(t, "sign", "--key", unversioned, "--kms-endpoint", "https://"+fake.Endpoint, "--kms-ca", ca, "--kms-dedicated-gateway", image)
	if code == 0 || !strings.Contains(out, "?version=") {
		t.Fatalf("sign unversioned through a dedicated gateway = %d, %q; want a refusal asking for ?version=", code, out)
	}
}

// TestSignKMSUnversionedWarns: an unversioned reference to a key with two
// versions warns, names the version it signed with, and that version verifies.
func TestSignKMSUnversionedWarns(t *testing.T) {
	fake := startFakeKMS(t)
	host := startRegistry(t)
	image := host + "/warn:v1"
	push(t, image, randomImage(t))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.KeyRSA
	out, code := runCLI(t, "sign", "--key", ref, "--kms-endpoint", "http://"+fake.Endpoint, image)
	if code != 0 {
		t.Fatalf("sign = %d, %q", code, out)
	}
	for _, want := range []string{"warning: ", "2 versions", "?version=" + kmsfake.VersionRSA, "version:   " + kmsfake.VersionRSA} {
		if !strings.Contains(out, want) {
			t.Errorf("sign output %q does not contain %q", out, want)
		}
	}
	out, code = runCLI(t, "sign", "--key", ref+"?version="+kmsfake.VersionRSAOld, "--kms-endpoint", "http://"+fake.Endpoint, image)
	if code != 0 || strings.Contains(out, "warning:") || !strings.Contains(out, "version:   "+kmsfake.VersionRSAOld) {
		t.Fatalf("sign with a pinned version = %d, %q; want no warning and the pinned version", code, out)
	}
}

// TestSignRefusesCorruptKMSSignature: a KMS answer that does not verify with the
// key's public half is not pushed.
func TestSignRefusesCorruptKMSSignature(t *testing.T) {
	fake := startFakeKMS(t)
	fake.CorruptSignatures(true)
	host := startRegistry(t)
	image := host + "/corrupt:v1"
	digest := push(t, image, randomImage(t))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA + "?version=" + kmsfake.VersionRSA
	out, code := runCLI(t, "sign", "--key", ref, "--kms-endpoint", "http://"+fake.Endpoint, image)
	if code == 0 || !strings.Contains(out, "refusing to push") || !strings.Contains(out, kmsfake.VersionRSA) {
		t.Fatalf("sign with a corrupt KMS answer = %d, %q; want a refusal naming the key version", code, out)
	}
	repo, err := name.NewRepository(host + "/corrupt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(repo.Tag(signature.SignatureTag(digest))); err == nil {
		t.Fatal("a signature tag was pushed despite the refusal")
	}
}
