//go:build !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

const testDigest = "sha256:3f0e1b6c5d4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"

func TestExemptionAndRevocationCommands(t *testing.T) {
	dir := t.TempDir()
	bf := filepath.Join(dir, "b.yaml")
	_, pub := testKeyPair(t, dir, "w")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "w", "--key", pub)

	out := mustRun(t, "exemption", "create", "--bundle", bf, "--name", "inc-1", "--namespace", "payments",
		"--image-digest", testDigest, "--expires", "48h", "--reason", "hotfix")
	if !strings.Contains(out, `exemption "inc-1" created, expires`) {
		t.Errorf("exemption create = %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--namespace", "a", "--pod", "p", "--expires", "-1h", "--reason", "r"}, "in the past"},
		{[]string{"--name", "x", "--namespace", "a", "--pod", "p", "--expires", "soon", "--reason", "r"}, "neither an RFC 3339 time"},
		{[]string{"--name", "x", "--namespace", "a", "--expires", "1h", "--reason", "r"}, "at least one of the flags in the group [image-digest pod]"},
		{[]string{"--name", "x", "--namespace", "a", "--pod", "p", "--image-digest", testDigest, "--expires", "1h", "--reason", "r"}, "none of the others can be"},
		{[]string{"--name", "x", "--namespace", "a", "--image-digest", "sha256:abc", "--expires", "1h", "--reason", "r"}, "is not a digest"},
		{[]string{"--name", "inc-1", "--namespace", "a", "--pod", "p", "--expires", "1h", "--reason", "r"}, "already exists"},
	} {
		_, _, err := run(t, append([]string{"exemption", "create", "--bundle", bf}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("exemption create %v = %v; want %q", tc.args, err, tc.want)
		}
	}
	if out := mustRun(t, "exemption", "list", "--bundle", bf); !strings.Contains(out, "inc-1") || !strings.Contains(out, "active") {
		t.Errorf("exemption list = %q", out)
	}

	data, _ := os.ReadFile(bf)
	b, _ := policy.ParseBundle(bf, data)
	fp := b.Witness("w").Keys[0].Fingerprint
	_, errOut, err := run(t, "revocation", "create", "--bundle", bf, "--name", "leak", "--key-fingerprint", fp, "--reason", "leaked")
	if err != nil || !strings.Contains(errOut, `is a key of witness "w"`) {
		t.Errorf("revocation create = %v, stderr %q", err, errOut)
	}
	mustRun(t, "revocation", "create", "--bundle", bf, "--name", "bad-image", "--image-digest", testDigest,
		"--effective", "2026-11-01T00:00:00Z", "--reason", "compromised runner")
	if _, _, err := run(t, "revocation", "create", "--bundle", bf, "--name", "x", "--reason", "r"); err == nil {
		t.Error("revocation create without keys or digests succeeded")
	}
	if out := mustRun(t, "revocation", "list", "--bundle", bf); !strings.Contains(out, "leak") || !strings.Contains(out, "2026-11-01T00:00:00Z") {
		t.Errorf("revocation list = %q", out)
	}

	data, _ = os.ReadFile(bf)
	b, err = policy.ParseBundle(bf, data)
	if err != nil {
		t.Fatal(err)
	}
	if !b.KeyRevoked(fp, time.Now().Add(time.Minute)) || len(b.Exemptions) != 1 || b.Exemptions[0].Expires.Before(time.Now().Add(47*time.Hour)) {
		t.Errorf("bundle = %+v", b)
	}
	mustRun(t, "exemption", "delete", "--bundle", bf, "inc-1")
	mustRun(t, "revocation", "delete", "--bundle", bf, "leak")
	if _, _, err := run(t, "revocation", "delete", "--bundle", bf, "leak"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("second revocation delete = %v", err)
	}
}
