//go:build integration

package cosign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// TestCosignVerifiesOurKMS: an image signed through the Alibaba Cloud KMS
// provider (the real SDK against the fake KMS endpoint on 127.0.0.1)
// verifies with "cosign verify --key" and the KMS key's public PEM.
func TestCosignVerifiesOurKMS(t *testing.T) {
	env, ref, pubPath := kmsKey(t, kmsfake.AliasRSA)

	host := startRegistry(t, false)
	tag, digestRef := pushImage(t, host, "kms", randomImage(t))
	if r := exe(t, env, csigBin, "sign", "--key", ref, tag); r.code != 0 {
		t.Fatalf("nri-csig sign (KMS): exit %d\n%s", r.code, r.out)
	}
	if r := cosign(t, append(cosignVerifyFlags, "--key", pubPath, digestRef)...); r.code != 0 {
		t.Fatalf("cosign verify (KMS RSA signature): exit %d\n%s", r.code, r.out)
	}
	if r := csig(t, "verify", "--key", pubPath, tag); r.code != 0 {
		t.Fatalf("nri-csig verify (KMS RSA signature): exit %d\n%s", r.code, r.out)
	}

	// RSA-PSS witness signatures verify here when asked for; cosign checks
	// PKCS#1 v1.5 only, which is why PKCS#1 v1.5 is the default.
	tag2, digestRef2 := pushImage(t, host, "kms-pss", randomImage(t))
	if r := exe(t, env, csigBin, "sign", "--key", ref, "--signature-algorithm", "RSA_PSS_SHA_256", tag2); r.code != 0 {
		t.Fatalf("nri-csig sign (KMS PSS): exit %d\n%s", r.code, r.out)
	}
	if r := csig(t, "verify", "--key", pubPath, "--signature-algorithm", "RSA_PSS_SHA_256", tag2); r.code != 0 {
		t.Fatalf("nri-csig verify (KMS PSS): exit %d\n%s", r.code, r.out)
	}
	if r := csig(t, "verify", "--key", pubPath, tag2); r.code != 1 {
		t.Fatalf("nri-csig verify (PSS signature, PKCS#1 expected): exit %d; want 1\n%s", r.code, r.out)
	}
	if r := cosign(t, append(cosignVerifyFlags, "--key", pubPath, digestRef2)...); r.code == 0 {
		t.Logf("note: cosign accepted an RSA-PSS signature:\n%s", r.out)
	}
}

// pemOnly keeps the PEM block of out (public-key writes notes to stderr).
func pemOnly(out string) string {
	const begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
	i, j := strings.Index(out, begin), strings.Index(out, end)
	if i < 0 || j < 0 {
		return out
	}
	return out[i:j+len(end)] + "\n"
}

// TestCosignVerifiesKMSRSA3072: an RSA_3072 KMS key signs (PKCS#1 v1.5, the
// default) and real cosign verifies the signature with the key's public PEM.
func TestCosignVerifiesKMSRSA3072(t *testing.T) {
	env, ref, pubPath := kmsKey(t, kmsfake.KeyRSA3072)
	host := startRegistry(t, false)
	tag, digestRef := pushImage(t, host, "kms3072", randomImage(t))
	if r := exe(t, env, csigBin, "sign", "--key", ref, tag); r.code != 0 || !strings.Contains(r.out, "RSA_3072") {
		t.Fatalf("nri-csig sign (KMS RSA_3072): exit %d\n%s", r.code, r.out)
	}
	if r := cosign(t, append(cosignVerifyFlags, "--key", pubPath, digestRef)...); r.code != 0 {
		t.Fatalf("cosign verify (KMS RSA_3072 signature): exit %d\n%s", r.code, r.out)
	}
}

// kmsKey starts the loopback KMS fake and returns the environment that points
// nri-csig at it, the alikms:// reference of key, and a file holding that
// key's public PEM as "nri-csig public-key" prints it.
func kmsKey(t *testing.T, key string) (env []string, ref, pubPath string) {
	t.Helper()
	fake, err := kmsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	env = []string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID=" + kmsfake.AccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + kmsfake.AccessKeySecret,
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"NRI_CSIG_KMS_ENDPOINT=http://" + fake.Endpoint,
	}
	ref = "alikms://" + kmsfake.Region + "/" + key
	pub := exe(t, env, csigBin, "public-key", "--key", ref)
	if pub.code != 0 {
		t.Fatalf("nri-csig public-key %s: exit %d\n%s", ref, pub.code, pub.out)
	}
	pubPath = filepath.Join(t.TempDir(), "kms.pub")
	if err := os.WriteFile(pubPath, []byte(pemOnly(pub.out)), 0o644); err != nil {
		t.Fatal(err)
	}
	return env, ref, pubPath
}
