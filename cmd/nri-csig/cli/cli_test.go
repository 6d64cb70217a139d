//go:build !nodeonly

package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// run is defined in keys_test.go.

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("nri-csig %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// testKeyPair writes an RSA-2048 key pair under dir and returns the paths.
func testKeyPair(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	priv, pub, err := local.Generate(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestWitnessAndPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	bf := filepath.Join(dir, "fleet.yaml")
	_, relPub := testKeyPair(t, dir, "release")
	qaPriv, _ := testKeyPair(t, dir, "qa")

	out := mustRun(t, "witness", "create", "--bundle", bf, "--name", "release", "--key", relPub, "--description", "release pipeline")
	if !strings.Contains(out, `witness "release" created with key sha256:`) || !strings.Contains(out, "RSA_2048") {
		t.Errorf("witness create output = %q", out)
	}
	// A private key file is accepted: only its public half is stored.
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "qa", "--key", qaPriv)
	data, _ := os.ReadFile(bf)
	if strings.Contains(string(data), "PRIVATE") {
		t.Fatal("bundle holds a private key")
	}
	if _, _, err := run(t, "witness", "create", "--bundle", bf, "--name", "dup", "--key", relPub); err == nil ||
		!strings.Contains(err.Error(), `already a key of witness "release"`) {
		t.Errorf("reusing a key: %v", err)
	}

	out = mustRun(t, "policy", "create", "--bundle", bf, "--name", "prod", "--witness", "release,qa", "--cluster", "c1",
		"--namespace", "default", "--namespace", "payments", "--note", "PCI")
	if !strings.Contains(out, "disabled: it does nothing until") {
		t.Errorf("policy create output = %q; want it to say the policy is disabled", out)
	}
	mustRun(t, "policy", "create", "--bundle", bf, "--name", "trial", "--witness", "release", "--witness", "qa",
		"--threshold", "1", "--cluster", "*", "--namespace", "*", "--mode", "audit", "--enabled")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--witness", "ghost", "--cluster", "c1", "--namespace", "default"}, `witness "ghost" does not exist`},
		{[]string{"--name", "x", "--witness", "qa", "--cluster", "c1", "--namespace", "Bad_NS"}, `is not a Kubernetes namespace name`},
		{[]string{"--name", "x", "--witness", "qa", "--cluster", "c1", "--namespace", "a", "--mode", "warn"}, `--mode "warn"`},
		{[]string{"--name", "x", "--witness", "qa", "--cluster", "c1", "--namespace", "a", "--threshold", "2"}, `--threshold 2`},
		{[]string{"--name", "prod", "--witness", "qa", "--cluster", "c1", "--namespace", "a"}, `already exists`},
	} {
		_, _, err := run(t, append([]string{"policy", "create", "--bundle", bf}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("policy create %v = %v; want %q", tc.args, err, tc.want)
		}
	}

	_, _, err := run(t, "witness", "delete", "--bundle", bf, "qa")
	if err == nil || !strings.Contains(err.Error(), "used by security policies prod, trial") {
		t.Errorf("witness delete qa = %v; want a refusal naming prod, trial", err)
	}
	mustRun(t, "policy", "enable", "--bundle", bf, "prod")
	out = mustRun(t, "policy", "list", "--bundle", bf)
	if !strings.Contains(out, "prod   true") || !strings.Contains(out, "1 of release,qa") {
		t.Errorf("policy list = %q", out)
	}
	out = mustRun(t, "witness", "list", "--bundle", bf)
	if !strings.Contains(out, "prod,trial") {
		t.Errorf("witness list = %q", out)
	}
	out = mustRun(t, "witness", "show", "--bundle", bf, "release")
	if !strings.Contains(out, "Fingerprint:  sha256:") || !strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Errorf("witness show = %q", out)
	}
	mustRun(t, "policy", "disable", "--bundle", bf, "prod")
	out = mustRun(t, "policy", "show", "--bundle", bf, "prod")
	if !strings.Contains(out, "Enabled:     false") || !strings.Contains(out, "2 of 2 must have signed") {
		t.Errorf("policy show = %q", out)
	}
	mustRun(t, "policy", "delete", "--bundle", bf, "prod")
	mustRun(t, "policy", "delete", "--bundle", bf, "trial")
	mustRun(t, "witness", "delete", "--bundle", bf, "qa")

	data, _ = os.ReadFile(bf)
	b, err := policy.ParseBundle(bf, data)
	if err != nil {
		t.Fatal(err)
	}
	// One serial per edit: 2 witness creates, 2 policy creates, enable, disable, 3 deletes.
	if b.Serial != 9 || len(b.Witnesses) != 1 || len(b.Policies) != 0 || b.Name != "fleet" {
		t.Errorf("bundle after edits: serial %d, %d witnesses, %d policies, name %q", b.Serial, len(b.Witnesses), len(b.Policies), b.Name)
	}
}

func TestWitnessCreateRefusesUnsupportedKeys(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	p := filepath.Join(dir, "p384.pub")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	_, _, err = run(t, "witness", "create", "--bundle", filepath.Join(dir, "b.yaml"), "--name", "w", "--key", p)
	if err == nil || !strings.Contains(err.Error(), "RSA") {
		t.Errorf("witness create with a P-384 key = %v; want a refusal naming the key to create", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.yaml")); err == nil {
		t.Error("a refused witness create wrote the bundle")
	}
	_, _, err = run(t, "witness", "list", "--bundle", filepath.Join(dir, "none.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no bundle file at") {
		t.Errorf("witness list on a missing file = %v", err)
	}
}

func TestWitnessCreateKMS(t *testing.T) {
	fake := startFakeKMS(t)
	bf := filepath.Join(t.TempDir(), "b.yaml")
	kms := func(key string) []string {
		return []string{"--key", "alikms://" + kmsfake.Region + "/" + key, "--kms-endpoint", "http://" + fake.Endpoint, "--kms-timeout", "5s"}
	}
	mustRun(t, append([]string{"witness", "create", "--bundle", bf, "--name", "release", "--description", "KMS"}, kms(kmsfake.AliasRSA)...)...)
	data, _ := os.ReadFile(bf)
	b, err := policy.ParseBundle(bf, data)
	if err != nil {
		t.Fatal(err)
	}
	k := b.Witness("release").Keys[0]
	wantFP, _ := policy.Fingerprint(fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA))
	if k.Provider != "alikms" || k.KeyID != kmsfake.KeyRSA || k.KeyVersionID != kmsfake.VersionRSA || k.Region != kmsfake.Region ||
		k.Fingerprint != wantFP || k.Algorithm != policy.RSAPKCS1SHA256 {
		t.Errorf("witness key = %+v; want KMS key %s version %s, fingerprint %s", k, kmsfake.KeyRSA, kmsfake.VersionRSA, wantFP)
	}
	// Rotation: the older key version is a different key.
	mustRun(t, append([]string{"witness", "add-key", "--bundle", bf, "release"},
		append(kms(kmsfake.KeyRSA), "--key", "alikms://"+kmsfake.Region+"/"+kmsfake.KeyRSA+"?version="+kmsfake.VersionRSAOld)...)...)
	for _, key := range []string{kmsfake.KeyAES, kmsfake.KeyDisabled} {
		_, _, err := run(t, append([]string{"witness", "create", "--bundle", bf, "--name", "bad"}, kms(key)...)...)
		if err == nil || !strings.Contains(err.Error(), "SIGN/VERIFY") && !strings.Contains(err.Error(), "not enabled") {
			t.Errorf("witness create with %s = %v; want a refusal saying which key to use", key, err)
		}
	}
	out := mustRun(t, "witness", "show", "--bundle", bf, "release")
	if !strings.Contains(out, "KMS:          region "+kmsfake.Region+", key "+kmsfake.KeyRSA+", version "+kmsfake.VersionRSAOld) {
		t.Errorf("witness show = %s", out)
	}
	// End of the rotation: the new version's key goes, the old one stays; the last key cannot go.
	mustRun(t, "witness", "remove-key", "--bundle", bf, "release", wantFP)
	data, _ = os.ReadFile(bf)
	b, _ = policy.ParseBundle(bf, data)
	last := b.Witness("release").Keys
	if len(last) != 1 || last[0].KeyVersionID != kmsfake.VersionRSAOld {
		t.Fatalf("keys after remove-key = %+v", last)
	}
	if _, _, err := run(t, "witness", "remove-key", "--bundle", bf, "release", last[0].Fingerprint); err == nil || !strings.Contains(err.Error(), "last key") {
		t.Errorf("removing the last key = %v; want a refusal", err)
	}
}
