package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
	"github.com/nri-csig/nri-csig/internal/x509test"
)

// The three binaries of ./cmd/nri-csig (Makefile "build"): these tests build
// nri-csigd (-tags nodeonly) and nri-csig-cli (-tags nodaemon) and run them.

var builds struct {
	once         sync.Once
	dir          string
	daemon, lite string
	err          error
}

// build returns the paths of nri-csigd and nri-csig-cli, built once per run
// into a folder of their own.
func build(t *testing.T) (daemon, lite string) {
	t.Helper()
	builds.once.Do(func() {
		builds.dir, builds.err = os.MkdirTemp("", "nri-csig-binaries-")
		if builds.err != nil {
			return
		}
		builds.daemon, builds.lite = filepath.Join(builds.dir, "nri-csigd"), filepath.Join(builds.dir, "nri-csig-cli")
		for out, tag := range map[string]string{builds.daemon: "nodeonly", builds.lite: "nodaemon"} {
			if b, err := exec.Command("go", "build", "-tags", tag, "-o", out, ".").CombinedOutput(); err != nil {
				builds.err = errors.New("go build -tags " + tag + ": " + err.Error() + "\n" + string(b))
				return
			}
		}
	})
	if builds.err != nil {
		t.Fatal(builds.err)
	}
	return builds.daemon, builds.lite
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// run runs bin with args in an environment whose PATH is path only.
func run(t *testing.T, path, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return "", 0
}

// copyTo copies the binary src into dir (a copy, so that os.Executable is
// in dir) and returns its path.
func copyTo(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// fakeFull writes an "nri-csig" into dir that prints its arguments and the
// re-exec mark, and exits 7.
func fakeFull(t *testing.T, dir string) {
	t.Helper()
	script := "#!/bin/sh\necho \"full nri-csig: $* mark=$NRI_CSIG_CLI_REEXEC\"\nexit 7\n"
	if err := os.WriteFile(filepath.Join(dir, "nri-csig"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// files writes what the commands below read: a CA, a public key, a
// trusted_root.json and an empty signature layout.
func files(t *testing.T) (ca, pub, trustedRoot, sigDir string) {
	t.Helper()
	dir := t.TempDir()
	ca = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, x509test.PEM(x509test.NewCA(t, "release CA").Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub = filepath.Join(dir, "key.pub")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	trustedRoot = filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(trustedRoot, tr, 0o644); err != nil {
		t.Fatal(err)
	}
	sigDir = filepath.Join(dir, "signatures")
	if err := os.Mkdir(sigDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return ca, pub, trustedRoot, sigDir
}

const image = "registry.invalid/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// nri-csig-cli runs the commands that need the certificate witnesses'
// verifiers or notation signing with the nri-csig next to it, with the same
// arguments: the output and the exit status are that binary's.
func TestCLIRunsFullBinaryForCertificateWitnesses(t *testing.T) {
	_, lite := build(t)
	dir := t.TempDir()
	lite = copyTo(t, lite, dir)
	fakeFull(t, dir)
	ca, pub, trustedRoot, sigDir := files(t)
	bundle := filepath.Join(t.TempDir(), "bundle.yaml")
	for _, args := range [][]string{
		{"verify", "--ca", ca, "--trusted-identity", "*", "--signature-dir", sigDir, image},
		{"verify", "--key", pub, "--trusted-root", trustedRoot, "--issuer", "https://issuer.example.com", "--subject", "a@example.com", "--signature-dir", sigDir, image},
		{"sign", "--key", pub, "--format", "notation", "--certificate-chain", ca, "registry.invalid/app:1"},
		{"witness", "create", "--bundle", bundle, "--name", "notary", "--kind", "x509", "--ca", ca, "--trusted-identity", "*"},
		{"witness", "set-trust", "--bundle", bundle, "notary", "--ca", ca, "--trusted-identity", "*"},
	} {
		out, code := run(t, "/nonexistent", lite, args...)
		want := "full nri-csig: " + strings.Join(args, " ") + " mark=1\n"
		if code != 7 || out != want {
			t.Errorf("nri-csig-cli %s: exit %d, output %q; want nri-csig's exit 7 and output %q", strings.Join(args, " "), code, out, want)
		}
	}

	// What needs no certificate verifier stays in nri-csig-cli: a key
	// verification, a keyless witness's trust (pkg/policy parses it).
	if out, code := run(t, "/nonexistent", lite, "verify", "--key", pub, "--signature-dir", sigDir, image); code != 1 || !strings.Contains(out, "no signatures") || strings.Contains(out, "full nri-csig") {
		t.Errorf("nri-csig-cli verify --key: exit %d\n%s\nwant its own verdict: exit 1, no signatures", code, out)
	}
	out, code := run(t, "/nonexistent", lite, "witness", "create", "--bundle", bundle, "--name", "keyless", "--kind", "sigstore",
		"--trusted-root", trustedRoot, "--issuer", "https://issuer.example.com", "--subject", "a@example.com")
	if code != 0 || !strings.Contains(out, `witness "keyless" created: keyless Sigstore`) {
		t.Errorf("nri-csig-cli witness create --kind sigstore: exit %d\n%s", code, out)
	}
}

// Without nri-csig next to it, nri-csig-cli finds it on PATH; without one
// at all, or when that "nri-csig" is itself an nri-csig-cli build, it
// refuses with exit 2 and says to install or run nri-csig.
func TestCLIWithoutFullBinaryRefuses(t *testing.T) {
	_, lite := build(t)
	ca, _, _, sigDir := files(t)
	args := []string{"verify", "--ca", ca, "--trusted-identity", "*", "--signature-dir", sigDir, image}

	alone := copyTo(t, lite, t.TempDir())
	onPath := t.TempDir()
	fakeFull(t, onPath)
	if out, code := run(t, onPath, alone, args...); code != 7 || !strings.HasPrefix(out, "full nri-csig: verify ") {
		t.Errorf("with nri-csig on PATH: exit %d\n%s", code, out)
	}

	out, code := run(t, "/nonexistent", alone, args...)
	if code != 2 || !strings.Contains(out, "install nri-csig") || !strings.Contains(out, "no executable nri-csig next to") {
		t.Errorf("without nri-csig: exit %d\n%s\nwant exit 2 saying to install nri-csig", code, out)
	}

	// An "nri-csig" that is an nri-csig-cli build runs once, then refuses.
	loop := t.TempDir()
	lite2 := copyTo(t, lite, loop)
	if err := os.Rename(copyTo(t, lite, t.TempDir()), filepath.Join(loop, "nri-csig")); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "/nonexistent", lite2, args...)
	if code != 2 || !strings.Contains(out, "is an nri-csig-cli build") {
		t.Errorf("nri-csig that is nri-csig-cli: exit %d\n%s\nwant exit 2, no loop", code, out)
	}
}

// nri-csigd has the node daemon's commands only; the others say which
// binaries have them.
func TestDaemonBinaryHasNodeCommandsOnly(t *testing.T) {
	daemon, _ := build(t)
	if out, code := run(t, "/nonexistent", daemon, "version"); code != 0 || !strings.HasPrefix(out, "nri-csig ") {
		t.Errorf("nri-csigd version: exit %d\n%s", code, out)
	}
	config := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: c1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, "/nonexistent", daemon, "check-config", config); code != 0 || !strings.Contains(out, `ok (cluster "c1"`) {
		t.Errorf("nri-csigd check-config: exit %d\n%s", code, out)
	}
	if out, code := run(t, "/nonexistent", daemon, "run", "--help"); code != 0 || !strings.Contains(out, "--nri-socket") {
		t.Errorf("nri-csigd run --help: exit %d\n%s", code, out)
	}
	help, _ := run(t, "/nonexistent", daemon, "--help")
	for _, name := range []string{"sign", "verify", "witness", "policy", "bundle", "exemption", "revocation", "public-key", "generate-key", "import", "acr-credential-provider"} {
		out, code := run(t, "/nonexistent", daemon, name, "--help")
		if code != 2 || !strings.Contains(out, `run "nri-csig `+name+`" or "nri-csig-cli `+name+`"`) {
			t.Errorf("nri-csigd %s: exit %d\n%s\nwant exit 2 naming nri-csig and nri-csig-cli", name, code, out)
		}
		if strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("nri-csigd --help lists %s:\n%s", name, help)
		}
	}
}
