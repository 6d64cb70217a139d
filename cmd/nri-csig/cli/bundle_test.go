//go:build !nodeonly

package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

func TestBundleSignVerifyPushPull(t *testing.T) {
	dir := t.TempDir()
	bf := filepath.Join(dir, "csig-bundle.yaml")
	_, wpub := testKeyPair(t, dir, "release")
	spriv, spub := testKeyPair(t, dir, "signing")
	_, otherPub := testKeyPair(t, dir, "other")
	mustRun(t, "witness", "create", "--bundle", bf, "--name", "release", "--key", wpub)
	mustRun(t, "policy", "create", "--bundle", bf, "--name", "prod", "--witness", "release", "--cluster", "c1", "--namespace", "default")

	if _, _, err := run(t, "bundle", "verify", "--bundle", bf, "--key", spub); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("verify before signing = %v", err)
	}
	out := mustRun(t, "bundle", "sign", "--bundle", bf, "--key", spriv)
	if !strings.Contains(out, "serial 2") {
		t.Errorf("sign output = %q", out)
	}
	out = mustRun(t, "bundle", "verify", "--bundle", bf, "--key", spub)
	if !strings.Contains(out, "verified") || !strings.Contains(out, "serial 2") {
		t.Errorf("verify output = %q", out)
	}
	if _, _, err := run(t, "bundle", "verify", "--bundle", bf, "--key", otherPub); err == nil || !strings.Contains(err.Error(), "trusted bundle-signing key is") {
		t.Errorf("verify with another key = %v", err)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/sec/bundle:prod"
	out = mustRun(t, "bundle", "push", "--bundle", bf, ref)
	if !strings.Contains(out, "@sha256:") {
		t.Errorf("push output = %q", out)
	}
	pulled := filepath.Join(dir, "pulled.yaml")
	if _, _, err := run(t, "bundle", "pull", "--bundle", pulled, "--key", otherPub, ref); err == nil {
		t.Error("pull with the wrong key succeeded")
	}
	if _, err := os.Stat(pulled); err == nil {
		t.Error("a refused pull wrote the bundle")
	}
	out = mustRun(t, "bundle", "pull", "--bundle", pulled, "--key", spub, ref)
	if !strings.Contains(out, "serial 2, signature in") {
		t.Errorf("pull output = %q", out)
	}
	a, _ := os.ReadFile(bf)
	b, _ := os.ReadFile(pulled)
	if string(a) != string(b) {
		t.Error("pulled bundle differs from the pushed one")
	}
	mustRun(t, "bundle", "verify", "--bundle", pulled, "--key", spub)

	// An edit drops the stale signature.
	_, errOut, err := run(t, "policy", "enable", "--bundle", bf, "prod")
	if err != nil || !strings.Contains(errOut, "removed the signature") {
		t.Errorf("enable after signing: %v, stderr %q", err, errOut)
	}
	if _, err := os.Stat(bf + ".sig"); err == nil {
		t.Error("stale signature left beside the edited bundle")
	}
}
