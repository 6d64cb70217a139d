//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// TestImportKritis: the plan is printed and nothing written without --write;
// with it the bundle parses and holds the imported witnesses and policies.
func TestImportKritis(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "bundle.yaml")
	list := filepath.Join("..", "..", "..", "pkg", "kritis", "testdata", "kritis-list.yaml")
	crictl := filepath.Join("..", "..", "..", "pkg", "kritis", "testdata", "crictl-images.txt")
	args := []string{"import", "kritis", "--bundle", bundle, "--cluster", "prod-1", "--region", "cn-hangzhou", "--running-digests", crictl, list}

	out, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("import (dry run) = %d, %q", code, out)
	}
	for _, want := range []string{"NO MAP  AttestationAuthority broken-aa", "maps    GenericAttestationPolicy payments/payments-gap",
		`NO MAP  AdmissionAllowlist allow-acs-images pattern "registry*.*.aliyuncs.com/acs/*"`, "Dry run", "--no-trunc"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan does not contain %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote %s (%v)", bundle, err)
	}

	out, code = runCLI(t, append(args, "--write")...)
	if code != 0 {
		t.Fatalf("import --write = %d, %q", code, out)
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle(bundle, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Witnesses) != 2 || len(b.Policies) != 2 || len(b.Exemptions) != 5 || b.Policy("default.demo-gap").Mode != policy.Audit {
		t.Fatalf("bundle: %d witnesses, %d policies, %d exemptions; want 2, 2, 5 in audit mode", len(b.Witnesses), len(b.Policies), len(b.Exemptions))
	}
	// Importing again clashes on the policies: refused, the bundle unchanged.
	if out, code := runCLI(t, append(args, "--write")...); code == 0 || !strings.Contains(out, "already in the bundle") {
		t.Fatalf("second import = %d, %q; want a refusal", code, out)
	}
	if again, _ := os.ReadFile(bundle); string(again) != string(data) {
		t.Fatal("a refused import changed the bundle")
	}
}
