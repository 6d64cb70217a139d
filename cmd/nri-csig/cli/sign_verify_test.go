//go:build !nodeonly

package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// run runs the CLI with args and returns stdout+stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := New()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		out.WriteString("error: " + err.Error() + "\n")
		return out.String(), ExitCode(err)
	}
	return out.String(), 0
}

func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func genKey(t *testing.T, name string) (priv, pub string) {
	t.Helper()
	priv, pub, err := local.Generate(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSignVerify(t *testing.T) {
	host := startRegistry(t)
	priv, pub := genKey(t, "witness")
	_, otherPub := genKey(t, "other")
	image := host + "/app:v1"
	digest := push(t, image, randomImage(t))

	out, code := runCLI(t, "sign", "--key", priv, "--annotation", "ci=build-42", image)
	if code != 0 || !strings.Contains(out, "Signed manifest "+digest) {
		t.Fatalf("sign = %d, %q; want 0 and the signed digest %s", code, out, digest)
	}
	out, code = runCLI(t, "verify", "--key", pub, image)
	if code != 0 || !strings.Contains(out, "Verified "+digest) {
		t.Fatalf("verify = %d, %q; want 0 and Verified", code, out)
	}
	out, code = runCLI(t, "verify", "--key", pub, "-o", "json", host+"/app@"+digest)
	var rep verifyReport
	if err := json.Unmarshal([]byte(strings.SplitN(out, "error:", 2)[0]), &rep); err != nil || code != 0 || !rep.Verified || rep.Result.Verified[0].Annotations["ci"] != "build-42" {
		t.Fatalf("verify -o json = %d, %q, %v; want verified with annotation ci", code, out, err)
	}
	// Air-gapped: save the signatures, then verify from the directory alone.
	dir := filepath.Join(t.TempDir(), "sigs")
	if out, code := runCLI(t, "verify", "--key", pub, "--save-signature-dir", dir, image); code != 0 {
		t.Fatalf("verify --save-signature-dir = %d, %q", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", pub, "--signature-dir", dir, "offline.example/app@"+digest); code != 0 || !strings.Contains(out, "Verified "+digest) {
		t.Fatalf("verify --signature-dir = %d, %q; want verified", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", pub, "--signature-dir", dir, "offline.example/app:v1"); code != 2 {
		t.Fatalf("verify --signature-dir with a tag = %d, %q; want 2", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", otherPub, image); code != 1 || strings.Contains(out, "Verified") {
		t.Fatalf("verify (other key) = %d, %q; want exit 1", code, out)
	}
	unsigned := host + "/unsigned:v1"
	push(t, unsigned, randomImage(t))
	if out, code := runCLI(t, "verify", "--key", pub, unsigned); code != 1 || !strings.Contains(out, "no signatures") {
		t.Fatalf("verify (unsigned) = %d, %q; want exit 1, no signatures", code, out)
	}
}

func TestVerifyErrors(t *testing.T) {
	_, pub := genKey(t, "witness")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := map[string][]string{
		"registry unreachable": {"verify", "--key", pub, closed + "/app:v1"},
		"no key":               {"verify", "127.0.0.1:1/app:v1"},
		"unknown flag":         {"verify", "--nope", "--key", pub, "x"},
		"two images":           {"verify", "--key", pub, "a", "b"},
		"missing key file":     {"verify", "--key", "/nonexistent.pub", "127.0.0.1:1/app:v1"},
		"bad output":           {"verify", "--key", pub, "-o", "yaml", "127.0.0.1:1/app:v1"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			out, code := runCLI(t, args...)
			if code != 2 || strings.Contains(out, "Verified") {
				t.Fatalf("%v = %d, %q; want exit 2", args, code, out)
			}
		})
	}
}

func TestSignVerifyMultiPlatform(t *testing.T) {
	host := startRegistry(t)
	priv, pub := genKey(t, "witness")
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	ref, _ := name.ParseReference(host + "/multi:v1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	armDigest, _ := arm.Digest()
	image := ref.String()

	if out, code := runCLI(t, "sign", "--key", priv, "--platform", "linux/arm64", image); code != 0 || !strings.Contains(out, "Signed linux/arm64 manifest "+armDigest.String()) {
		t.Fatalf("sign --platform = %d, %q", code, out)
	}
	// Only the arm64 manifest is signed: the index is not verified, and the
	// report says which digest the signature covers.
	out, code := runCLI(t, "verify", "--key", pub, image)
	if code != 1 || !strings.Contains(out, "platform linux/arm64 "+armDigest.String()+"\n  verified") {
		t.Fatalf("verify (platform signed) = %d, %q; want exit 1 and arm64 verified", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", pub, host+"/multi@"+armDigest.String()); code != 0 {
		t.Fatalf("verify arm64 digest = %d, %q; want 0", code, out)
	}
	if out, code := runCLI(t, "sign", "--key", priv, image); code != 0 || !strings.Contains(out, "Signed index "+idxDigest.String()) {
		t.Fatalf("sign index = %d, %q", code, out)
	}
	out, code = runCLI(t, "verify", "--key", pub, "-o", "json", image)
	var rep verifyReport
	if err := json.Unmarshal([]byte(strings.SplitN(out, "error:", 2)[0]), &rep); err != nil || code != 0 {
		t.Fatalf("verify index = %d, %q, %v", code, out, err)
	}
	if rep.Digest != idxDigest.String() || rep.Result.Verified[0].Digest != idxDigest.String() || len(rep.Platform) != 2 {
		t.Fatalf("verify index report = %+v", rep)
	}
}

// TestSignVerifyKMS signs through the KMS provider (real SDK, fake KMS on
// 127.0.0.1) and verifies with the KMS key reference as well as its PEM.
func TestSignVerifyKMS(t *testing.T) {
	fake := startFakeKMS(t)
	host := startRegistry(t)
	image := host + "/kms:v1"
	digest := push(t, image, randomImage(t))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA
	endpoint := "http://" + fake.Endpoint

	if out, code := runCLI(t, "sign", "--key", ref, "--kms-endpoint", endpoint, image); code != 0 || !strings.Contains(out, digest) {
		t.Fatalf("sign (KMS) = %d, %q", code, out)
	}
	if out, code := runCLI(t, "verify", "--key", ref, "--kms-endpoint", endpoint, image); code != 0 {
		t.Fatalf("verify --key %s = %d, %q; want 0", ref, code, out)
	}
	pem, err := keys.MarshalPublicKeyPEM(fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSA))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "kms.pub")
	if err := os.WriteFile(pub, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "verify", "--key", pub, image); code != 0 {
		t.Fatalf("verify --key kms.pub = %d, %q; want 0", code, out)
	}
	// The old key version did not sign it.
	oldPEM, _ := keys.MarshalPublicKeyPEM(fake.PublicKey(kmsfake.KeyRSA, kmsfake.VersionRSAOld))
	old := filepath.Join(t.TempDir(), "old.pub")
	if err := os.WriteFile(old, oldPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "verify", "--key", old, image); code != 1 {
		t.Fatalf("verify --key old-version.pub = %d, %q; want 1", code, out)
	}
}
