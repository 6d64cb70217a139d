//go:build !nodeonly

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// run executes the root command with args and returns stdout, stderr and the error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := New()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func TestGenerateAndPublicKey(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "dev")
	_, stderr, err := run(t, "generate-key", "--output-key-prefix", prefix)
	if err != nil {
		t.Fatalf("generate-key: %v", err)
	}
	if !strings.Contains(stderr, "Private key written to "+prefix+".key") || !strings.Contains(stderr, "Fingerprint sha256:") {
		t.Errorf("generate-key stderr = %q", stderr)
	}
	if _, _, err := run(t, "generate-key", "--output-key-prefix", prefix); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second generate-key = %v; want refusal to overwrite", err)
	}

	pubFile, err := os.ReadFile(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	fromPriv, stderr, err := run(t, "public-key", "--key", prefix+".key")
	if err != nil {
		t.Fatalf("public-key: %v", err)
	}
	if fromPriv != string(pubFile) {
		t.Errorf("public-key of the private key = %q; want the .pub file %q", fromPriv, pubFile)
	}
	fp, _, err := run(t, "public-key", "--key", "file://"+prefix+".pub", "--fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stderr, strings.TrimSpace(fp)+" RSA_2048 ") {
		t.Errorf("public-key stderr = %q; want it to start with %q RSA_2048", stderr, strings.TrimSpace(fp))
	}
}

func TestPublicKeyKMS(t *testing.T) {
	fake := startFakeKMS(t)
	want, err := keys.MarshalPublicKeyPEM(fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA))
	if err != nil {
		t.Fatal(err)
	}
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA

	out, stderr, err := run(t, "public-key", "--key", ref, "--kms-endpoint", "http://"+fake.Endpoint, "--kms-timeout", "5s")
	if err != nil || out != string(want) {
		t.Fatalf("public-key --key %s = %q, %v; want %q", ref, out, err, want)
	}
	if !strings.Contains(stderr, "key "+kmsfake.KeyRSA+", version "+kmsfake.VersionRSA) {
		t.Errorf("public-key stderr = %q; want the resolved key id and version", stderr)
	}

	// The same through the environment only.
	t.Setenv("NRI_CSIG_KEY", ref)
	t.Setenv("NRI_CSIG_KMS_ENDPOINT", "http://"+fake.Endpoint)
	if out, _, err = run(t, "public-key"); err != nil || out != string(want) {
		t.Fatalf("public-key with NRI_CSIG_* env = %q, %v; want the key", out, err)
	}

	_, _, err = run(t, "public-key", "--key", "alikms://"+kmsfake.Region+"/"+kmsfake.KeyAES)
	if err == nil || ExitCode(err) == 0 || !strings.Contains(err.Error(), "--KeySpec RSA_2048 --KeyUsage SIGN/VERIFY") {
		t.Fatalf("public-key of a symmetric key = %v; want refusal naming the key to create", err)
	}
}

func TestPublicKeyNoKey(t *testing.T) {
	t.Setenv("NRI_CSIG_KEY", "")
	if _, _, err := run(t, "public-key"); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("public-key without --key = %v; want an error naming --key", err)
	}
}
