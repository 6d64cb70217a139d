//go:build integration

package policy

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/testbed"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
)

// kritisObjects is what kubectl prints for one AttestationAuthority holding
// the public half of KMS key version kmsfake.VersionRSAOld and one
// GenericAttestationPolicy requiring it in namespace ns.
func kritisObjects(t *testing.T, ns string) string {
	t.Helper()
	pemText, err := keys.MarshalPublicKeyPEM(kms.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSAOld))
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`apiVersion: v1
kind: List
items:
- apiVersion: kritis.grafeas.io/v1beta1
  kind: AttestationAuthority
  metadata: {name: kritis-aa}
  spec:
    noteReference: namespaces/kritis-aa
    publicKeyData: %s
    publicKeyId: %s
- apiVersion: kritis.grafeas.io/v1beta1
  kind: GenericAttestationPolicy
  metadata: {name: gap, namespace: %s}
  spec:
    attestationAuthorityNames: [kritis-aa]
`, base64.StdEncoding.EncodeToString(pemText), kmsfake.KeyRSA, ns)
	path := filepath.Join(t.TempDir(), ns+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImportedKritisBundleEnforced: kritis objects imported into the node's
// bundle are enforced. A digest re-signed (sign --from-file) with the same
// KMS key version runs; an unsigned one is refused in the namespace imported
// with --enforce, and runs with a would-deny record in the one imported in
// audit mode (the default).
func TestImportedKritisBundleEnforced(t *testing.T) {
	editBundle(t, "import", "kritis", "--cluster", "it", "--region", kmsfake.Region, "--write", kritisObjects(t, "kritis-audit"))
	editBundle(t, "import", "kritis", "--cluster", "it", "--region", kmsfake.Region, "--enforce", "--write", kritisObjects(t, "kritis-enf"))

	// Push, re-sign, then pull: the node checks signatures when the image arrives.
	img, err := testbed.BusyboxImage(env.Tools.Busybox, "kritis-resigned")
	if err != nil {
		t.Fatal(err)
	}
	digest, err := env.Registry.Push("app/kritis-resigned:1", img)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(env.Registry.Ref("app/kritis-resigned:1"))
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "running.txt")
	if err := os.WriteFile(list, []byte(ref.Context().Digest(digest).String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "sign", "--key", "alikms://"+kmsfake.Region+"/"+kmsfake.KeyRSA+"?version="+kmsfake.VersionRSAOld, "--from-file", list)
	if !strings.Contains(out, "Signed 1 of 1") {
		t.Fatalf("sign --from-file:\n%s", out)
	}
	config, err := env.Containerd.Pull(ref.String())
	if err != nil {
		t.Fatal(err)
	}
	signed := testbed.Image{Ref: ref.String(), Digest: digest, ConfigDigest: config}
	unsigned := newImage(t, env.Registry, "app/kritis-unsigned:1", "kritis-unsigned")

	enf := newPod(t, "kritis-enf")
	mustRun(t, enf, "resigned", signed)
	mustRefuse(t, enf, "unsigned", unsigned, `policy "kritis-enf.gap"`, "kritis-aa")

	audit := newPod(t, "kritis-audit")
	mustRun(t, audit, "unsigned-audited", unsigned)
	rec := waitRecord(t, map[string]string{"event": "create", "decision": "would-deny", "container": "unsigned-audited", "policy": "kritis-audit.gap"})
	if rec["mode"] != "audit" {
		t.Errorf("audit-mode record = %v", rec)
	}
}
