//go:build !nodeonly

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// TestSignFromFile re-signs 100 digests with one KMS key through the loopback
// fake and registry: one progress line each, every signature attached, and no
// second holds more AsymmetricSign calls than --kms-qps allows.
func TestSignFromFile(t *testing.T) {
	fake := startFakeKMS(t)
	host := startRegistry(t)
	const n, qps = 100, 40
	var lines []string
	for i := range n {
		img, err := random.Image(16, 1)
		if err != nil {
			t.Fatal(err)
		}
		d := push(t, fmt.Sprintf("%s/app%d:v1", host, i%5), img)
		lines = append(lines, fmt.Sprintf("%s/app%d@%s", host, i%5, d))
	}
	list := filepath.Join(t.TempDir(), "digests.txt")
	if err := os.WriteFile(list, []byte("# running today\n"+strings.Join(lines, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.AliasRSA + "?version=" + kmsfake.VersionRSA
	out, code := runCLI(t, "sign", "--key", ref, "--kms-endpoint", "http://"+fake.Endpoint, "--from-file", list, "--kms-qps", fmt.Sprint(qps))
	if code != 0 {
		t.Fatalf("sign --from-file = %d, %q", code, out)
	}
	for _, want := range []string{"[1/100] signed ", "[100/100] signed ", "Signed 100 of 100 digests", kmsfake.VersionRSA} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	for _, l := range lines {
		d, err := name.NewDigest(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(d.Context().Tag(signature.SignatureTag(d.DigestStr()))); err != nil {
			t.Fatalf("no signature attached for %s: %v", l, err)
		}
	}
	times := fake.SignTimes()
	if len(times) != n {
		t.Fatalf("the fake answered %d AsymmetricSign; want %d", len(times), n)
	}
	// Any qps+1 consecutive calls span at least a second (less network jitter).
	for i := 0; i+qps < len(times); i++ {
		if span := times[i+qps].Sub(times[i]); span < 900*time.Millisecond {
			t.Fatalf("calls %d..%d came within %v: more than %d a second", i, i+qps, span, qps)
		}
	}
}

// TestSignFromFileRefusals: tags are never re-signed, and a key failure stops
// the run at once instead of failing every digest.
func TestSignFromFileRefusals(t *testing.T) {
	fake := startFakeKMS(t)
	host := startRegistry(t)
	d := push(t, host+"/app:v1", randomImage(t))
	ref := "alikms://" + kmsfake.Region + "/" + kmsfake.KeyRSA + "?version=" + kmsfake.VersionRSA
	kms := []string{"--key", ref, "--kms-endpoint", "http://" + fake.Endpoint}

	tags := filepath.Join(t.TempDir(), "tags.txt")
	os.WriteFile(tags, []byte(host+"/app:v1\n"+host+"/app@"+d+"\n"), 0o644)
	if out, code := runCLI(t, append([]string{"sign", "--from-file", tags}, kms...)...); code == 0 || !strings.Contains(out, "line 1") || fake.Calls("AsymmetricSign") != 0 {
		t.Fatalf("sign --from-file with a tag = %d, %q; want a refusal before signing anything", code, out)
	}

	list := filepath.Join(t.TempDir(), "digests.txt")
	os.WriteFile(list, []byte(strings.Repeat(host+"/app@"+d+"\n", 5)), 0o644)
	fake.CorruptSignatures(true)
	out, code := runCLI(t, append([]string{"sign", "--from-file", list}, kms...)...)
	if code == 0 || !strings.Contains(out, "[1/5]") || !strings.Contains(out, "stopped") || strings.Contains(out, "[2/5]") {
		t.Fatalf("sign --from-file with a corrupt KMS = %d, %q; want a stop at the first digest", code, out)
	}
	sigTag, err := name.NewTag(host + "/app:" + signature.SignatureTag(d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(sigTag); err == nil {
		t.Fatal("a signature was attached despite the refusal")
	}
}
