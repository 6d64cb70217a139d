//go:build !nodaemon && !nodeonly

package cli

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/daemon"
)

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func pkix1(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// check-config and the daemon's start validation are one function: each
// config below gets the same answer from both, and the refusals are the ones
// the daemon's start gives (issue 10, item 3).
func TestCheckConfigIsDaemonStartValidation(t *testing.T) {
	dir := t.TempDir()
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bundle"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ec.PublicKey, ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	keyFiles := map[string]string{
		"rsa2048": writePEM(t, filepath.Join(dir, "rsa2048.pub"), "PUBLIC KEY", pkix1(t, &rsa2048.PublicKey)),
		"ec":      writePEM(t, filepath.Join(dir, "ec.pub"), "PUBLIC KEY", pkix1(t, &ec.PublicKey)),
		"rsa1024": writePEM(t, filepath.Join(dir, "rsa1024.pub"), "PUBLIC KEY", pkix1(t, &rsa1024.PublicKey)),
		"ec384":   writePEM(t, filepath.Join(dir, "ec384.pub"), "PUBLIC KEY", pkix1(t, &ec384.PublicKey)),
		"ed25519": writePEM(t, filepath.Join(dir, "ed25519.pub"), "PUBLIC KEY", pkix1(t, edPub)),
		"cert":    writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", certDER),
		"private": writePEM(t, filepath.Join(dir, "ec.key"), "PRIVATE KEY", ecPriv),
		"garbage": filepath.Join(dir, "garbage.pub"),
	}
	os.WriteFile(keyFiles["garbage"], []byte("not a key\n"), 0o644)
	bundleDir := filepath.Join(dir, "bundle")
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: c1\nstateDir: " + filepath.Join(dir, "state") + "\n"
	withKey := func(key string) string {
		return head + "bundle:\n  file: " + bundleDir + "\n  signingKey: " + key + "\n"
	}
	for name, tc := range map[string]struct {
		config string
		want   string // substring of the refusal; empty: accepted
	}{
		"no bundle":                 {config: head},
		"RSA-2048 key":              {config: withKey(keyFiles["rsa2048"])},
		"EC P-256 key":              {config: withKey(keyFiles["ec"])},
		"file:// key":               {config: withKey("file://" + keyFiles["ec"])},
		"OCI source":                {config: head + "bundle:\n  oci: registry.example/security/bundle:prod\n"},
		"missing key file":          {config: withKey(filepath.Join(dir, "missing.pub")), want: "no such file"},
		"RSA-1024 key":              {config: withKey(keyFiles["rsa1024"]), want: "RSA key of 1024 bits is too weak"},
		"EC P-384 key":              {config: withKey(keyFiles["ec384"]), want: "only P-256"},
		"Ed25519 key":               {config: withKey(keyFiles["ed25519"]), want: "ed25519.PublicKey keys are not supported"},
		"certificate":               {config: withKey(keyFiles["cert"]), want: `"CERTIFICATE" is not a public key`},
		"private key":               {config: withKey(keyFiles["private"]), want: "holds a private key"},
		"not PEM":                   {config: withKey(keyFiles["garbage"]), want: "no PEM block found"},
		"KMS reference":             {config: withKey("alikms://cn-hangzhou/key-123"), want: "verifies bundles offline"},
		"relative key path":         {config: withKey("bundle.pub"), want: `bundle.signingKey: "bundle.pub" is a relative path`},
		"relative state dir":        {config: strings.Replace(head, "stateDir: /", "stateDir: ", 1), want: "stateDir"},
		"relative bundle file":      {config: head + "bundle:\n  file: bundle.yaml\n", want: "bundle.file"},
		"relative signatures dir":   {config: head + "signatures:\n  dir: sigs\n", want: "signatures.dir"},
		"malformed OCI reference":   {config: head + "bundle:\n  oci: \"registry.example/UPPER CASE:tag\"\n", want: "UPPER CASE"},
		"cluster with a newline":    {config: strings.Replace(head, "cluster: c1", `cluster: "prod\nEVIL"`, 1), want: "is not a cluster name"},
		"unknown field":             {config: head + "bundles: {}\n", want: "bundles is not a known field"},
		"bundle section, no source": {config: head + "bundle:\n  interval: 5s\n", want: "set file"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			_, derr := daemon.CheckConfig(path)
			out, _, cerr := run(t, "check-config", path)
			if tc.want == "" {
				if derr != nil || cerr != nil || !strings.Contains(out, "ok (cluster") {
					t.Fatalf("daemon start validation = %v; check-config = %q, %v; want both to accept", derr, out, cerr)
				}
				return
			}
			if derr == nil || !strings.Contains(derr.Error(), tc.want) {
				t.Errorf("daemon start validation = %v; want a refusal containing %q", derr, tc.want)
			}
			if cerr == nil || derr == nil || cerr.Error() != derr.Error() {
				t.Errorf("check-config = %q, %v; want the daemon's refusal %v", out, cerr, derr)
			}
		})
	}
}
