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

func readBundle(t *testing.T, path string) (*policy.Bundle, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.ParseBundle(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return b, data
}

// "bundle sign" dates the bundle by default (30 days), renews with a higher
// serial, and signs an undated bundle only when told to.
func TestBundleSignSetsExpiry(t *testing.T) {
	dir := t.TempDir()
	bf := filepath.Join(dir, "csig-bundle.yaml")
	_, wpub := testKeyPair(t, dir, "release")
	spriv, spub := testKeyPair(t, dir, "signing")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "release", "--key", wpub)

	before := time.Now()
	out := mustRun(t, "bundle", "sign", "--bundle", bf, "--key", spriv)
	b, _ := readBundle(t, bf)
	want := before.Add(30 * 24 * time.Hour)
	if d := b.Expires.Sub(want); d < -time.Second || d > time.Minute {
		t.Errorf("expires = %v; want about %v (30 days)", b.Expires, want)
	}
	if b.Serial != 1 || !strings.Contains(out, "serial 1, expires "+b.Expires.Format(time.RFC3339)) {
		t.Errorf("first sign: serial %d, output %q; want serial 1 and the expiry", b.Serial, out)
	}
	mustRun(t, "bundle", "verify", "--bundle", bf, "--key", spub)

	// A renewal: the file was signed already, so the serial rises.
	mustRun(t, "bundle", "sign", "--bundle", bf, "--key", spriv, "--expires", "2h")
	b, _ = readBundle(t, bf)
	if b.Serial != 2 || time.Until(b.Expires) > 2*time.Hour || time.Until(b.Expires) < time.Hour {
		t.Errorf("renewal: serial %d expires %v; want serial 2 expiring in 2h", b.Serial, b.Expires)
	}
	mustRun(t, "bundle", "verify", "--bundle", bf, "--key", spub)

	// --no-expiry signs the exact bytes.
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "second", "--key", spub)
	_, data := readBundle(t, bf)
	_, stderr, err := run(t, "bundle", "sign", "--bundle", bf, "--key", spriv, "--no-expiry")
	if err != nil {
		t.Fatal(err)
	}
	if _, after := readBundle(t, bf); string(after) != string(data) {
		t.Error("--no-expiry changed the bundle")
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("--no-expiry of a dated bundle warned: %q", stderr)
	}
	if out := mustRun(t, "bundle", "verify", "--bundle", bf, "--key", spub); !strings.Contains(out, "(stale, expires ") {
		t.Errorf("verify of a bundle expiring within 2h = %q; want it called stale", out)
	}

	// A bundle past its expiry fails verify, as a node refuses it.
	b, _ = readBundle(t, bf)
	b.Expires = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	data, err = b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bf, data, 0o644)
	mustRun(t, "bundle", "sign", "--bundle", bf, "--key", spriv, "--no-expiry")
	if _, _, err := run(t, "bundle", "verify", "--bundle", bf, "--key", spub); err == nil || !strings.Contains(err.Error(), "bundle has expired") {
		t.Errorf("verify of an expired bundle = %v; want refused as expired", err)
	}
	if _, _, err := run(t, "bundle", "sign", "--bundle", bf, "--key", spriv, "--expires", "0s"); err == nil || !strings.Contains(err.Error(), "positive duration") {
		t.Errorf("--expires 0 = %v; want refused", err)
	}
	if _, _, err := run(t, "bundle", "sign", "--bundle", bf, "--key", spriv, "--expires", "1h", "--no-expiry"); err == nil {
		t.Error("--expires with --no-expiry accepted")
	}
}
