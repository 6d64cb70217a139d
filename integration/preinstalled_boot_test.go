//go:build integration

package integration

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
	"time"

	"github.com/nri-csig/nri-csig/internal/nettest"
)

// A pre-installed daemon must register within containerd's registration
// timeout (5 s from the launch, in the packaged drop-in as by default), or
// containerd stops it and, nri-csig being required, refuses every container
// until it restarts. Boot waits for the bundle sources and the image index
// only up to 3 s from the launch when pre-installed: here the bundle
// registry accepts connections and never answers, and the daemon must still
// register and enforce its allow list (no bundle was ever in force: fail
// closed for the rest). Waiting the external daemon's 5 s made containerd
// time the registration out.
func TestPreInstalledRegistersDespiteHungBundleRegistry(t *testing.T) {
	base, err := filepath.Abs("../packaging/containerd/50-nri-csig.toml")
	if err != nil {
		t.Fatal(err)
	}
	dropIn := filepath.Join(t.TempDir(), "51-nri-csig-preinstalled.toml")
	os.WriteFile(dropIn, []byte("version = 3\n"), 0o644) // filled in by installPreInstalled
	n := startGuardContainerd(t, base, dropIn)
	n.writeConfig(t, "bundle:\n  interval: 1s\n  signingKey: "+publicKeyFile(t)+"\n  oci: "+nettest.SilentListener(t)+"/security/csig-bundle:prod\n")
	logPath := n.installPreInstalled(t, dropIn)
	if err := n.c.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, `"msg":"synchronized with runtime"`, 15*time.Second)
	pod := n.pod(t, "hung-bundle", enforcedNS, podOptions{})
	if _, err := pod.create(t, "trusted", env.Trusted.Ref, ctrOptions{}); err != nil {
		t.Fatalf("the pre-installed daemon did not serve the allow-listed image with the bundle registry hung: %v", err)
	}
	_, err = pod.create(t, "unsigned", env.Untrusted.Ref, ctrOptions{})
	refusedBy(t, "unsigned, no bundle in force", err, "no policy bundle is in force")
	if b, _ := os.ReadFile(n.c.LogPath); strings.Contains(string(b), "registration timed out") {
		t.Errorf("containerd timed out the pre-installed daemon's registration:\n%s", n.c.LogTail(30))
	}
}

// publicKeyFile writes a fresh ECDSA public key (PEM) and returns its path.
func publicKeyFile(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
