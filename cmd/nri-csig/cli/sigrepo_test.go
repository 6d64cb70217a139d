//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sign --signature-repository stores the signature in that repository;
// verify reads it there (flag or $COSIGN_REPOSITORY), and not in the image's.
func TestSignAndVerifyInSignatureRepository(t *testing.T) {
	host := startRegistry(t)
	priv, pub := genKey(t, "ci")
	digest := push(t, host+"/app:v1", randomImage(t))
	sigs := host + "/team/signatures"
	t.Setenv(cosignRepositoryEnv, "")

	out, code := runCLI(t, "sign", "--key", priv, "--signature-repository", sigs, host+"/app:v1")
	if code != 0 {
		t.Fatalf("sign: exit %d\n%s", code, out)
	}
	want := "stored in: " + sigs + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
	if !strings.Contains(out, want) {
		t.Fatalf("sign output does not say %q:\n%s", want, out)
	}

	out, code = runCLI(t, "verify", "--key", pub, "--signature-repository", sigs, host+"/app:v1")
	if code != 0 || !strings.Contains(out, "signatures looked up in "+sigs) || !strings.Contains(out, "Verified "+digest) {
		t.Fatalf("verify --signature-repository: exit %d\n%s", code, out)
	}
	t.Setenv(cosignRepositoryEnv, sigs)
	if out, code := runCLI(t, "verify", "--key", pub, host+"/app:v1"); code != 0 {
		t.Fatalf("verify with $COSIGN_REPOSITORY: exit %d\n%s", code, out)
	}
	// The flag wins over the environment: the image's repository holds nothing.
	out, code = runCLI(t, "verify", "--key", pub, "--signature-repository", host+"/app", host+"/app:v1")
	if code != 1 || !strings.Contains(out, "signatures looked up in "+host+"/app\n") || !strings.Contains(out, "no signatures") {
		t.Fatalf("verify in the image's repository: exit %d; want 1 naming %s/app\n%s", code, host, out)
	}
	t.Setenv(cosignRepositoryEnv, "")
	if out, code := runCLI(t, "verify", "--key", pub, host+"/app:v1"); code != 1 {
		t.Fatalf("verify without a signature repository: exit %d; want 1\n%s", code, out)
	}

	// sign --from-file honours $COSIGN_REPOSITORY too.
	other := push(t, host+"/app:v2", randomImage(t))
	list := filepath.Join(t.TempDir(), "digests.txt")
	if err := os.WriteFile(list, []byte(host+"/app@"+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(cosignRepositoryEnv, sigs)
	if out, code := runCLI(t, "sign", "--key", priv, "--from-file", list); code != 0 {
		t.Fatalf("sign --from-file: exit %d\n%s", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", pub, host+"/app@"+other); code != 0 {
		t.Fatalf("verify of the --from-file signature in %s: exit %d\n%s", sigs, code, out)
	}
}

func TestSignatureRepositoryFlagRefusals(t *testing.T) {
	t.Setenv(cosignRepositoryEnv, "")
	priv, pub := genKey(t, "ci")
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"sign", "--key", priv, "--signature-repository", "127.0.0.1:1/sigs:v1", "127.0.0.1:1/app:v1"}, "", `--signature-repository: repository "127.0.0.1:1/sigs:v1" names a tag`},
		{[]string{"verify", "--key", pub, "127.0.0.1:1/app:v1"}, "sigs", `$COSIGN_REPOSITORY: repository "sigs" does not start with a registry host`},
		{[]string{"verify", "--key", pub, "--signature-repository", "", "127.0.0.1:1/app:v1"}, "", "--signature-repository is empty"},
		{[]string{"verify", "--key", pub, "--signature-repository", "127.0.0.1:1/sigs", "--signature-dir", t.TempDir(), "127.0.0.1:1/app@sha256:" + strings.Repeat("a", 64)}, "", "cannot be combined with --signature-dir"},
	} {
		t.Setenv(cosignRepositoryEnv, tc.env)
		out, code := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("nri-csig %s (COSIGN_REPOSITORY=%q): exit %d; want 2 and %q\n%s", strings.Join(tc.args, " "), tc.env, code, tc.want, out)
		}
	}
}

func TestHelpMentionsCosignRepository(t *testing.T) {
	for _, c := range []string{"sign", "verify"} {
		out, _ := runCLI(t, c, "--help")
		if !strings.Contains(out, "--signature-repository") || !strings.Contains(out, "$COSIGN_REPOSITORY") {
			t.Errorf("%s --help does not document --signature-repository and $COSIGN_REPOSITORY:\n%s", c, out)
		}
	}
}

func TestWitnessShowsSignatureRepository(t *testing.T) {
	bf := filepath.Join(t.TempDir(), "bundle.yaml")
	_, pub := genKey(t, "ci")
	_, pub2 := genKey(t, "qa")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "ci", "--key", pub, "--signature-repository", "registry.example.com/team/signatures")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "qa", "--key", pub2)
	if out := mustRun(t, "witness", "show", "--bundle", bf, "ci"); !strings.Contains(out, "Signatures:   in registry.example.com/team/signatures (signatureRepository)") {
		t.Errorf("witness show ci:\n%s", out)
	}
	if out := mustRun(t, "witness", "show", "--bundle", bf, "qa"); !strings.Contains(out, "Signatures:   in the image's own repository") {
		t.Errorf("witness show qa:\n%s", out)
	}
	_, errOut, err := run(t, "witness", "create", "--bundle", bf, "--name", "x", "--key", pub2, "--signature-repository", "sigs")
	if err == nil || !strings.Contains(err.Error(), "registry host") {
		t.Errorf("witness create with a host-less repository: %v %s; want a refusal", err, errOut)
	}
}
