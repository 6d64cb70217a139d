//go:build integration

// Package cosign checks interoperability with the real cosign: cosign
// verifies signatures made by nri-csig, and nri-csig verifies signatures made
// by cosign, in the legacy tag format and the Sigstore bundle format, offline
// (no transparency log, no Fulcio), against a loopback registry.
package cosign

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// cosignVersion is the cosign release the interop tests run.
const cosignVersion = "v3.1.3"

var (
	cosignBin string
	csigBin   string
	homeDir   string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := toolcache.Ensure(toolcache.Tool{Packages: []string{"github.com/sigstore/cosign/v3/cmd/cosign"}, Version: cosignVersion})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cosignBin = filepath.Join(bin, "cosign")
	tmp, err := os.MkdirTemp("", "nri-csig-cosign-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// cosign keeps a TUF cache under $HOME; give it an empty one so that no
	// test depends on, or writes to, the real home.
	homeDir = filepath.Join(tmp, "home")
	csigBin = filepath.Join(tmp, "nri-csig")
	build := exec.Command("go", "build", "-o", csigBin, "github.com/nri-csig/nri-csig/cmd/nri-csig")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nri-csig:", err)
		return 1
	}
	return m.Run()
}

// cmdResult is the outcome of one command.
type cmdResult struct {
	out  string
	code int
}

// exe runs bin with args (and extra env) and returns its combined output and
// exit code; it fails the test only when the command cannot run at all.
func exe(t testing.TB, env []string, bin string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+homeDir, "COSIGN_YES=true", "TUF_ROOT="+filepath.Join(homeDir, "tuf"))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return cmdResult{out: out.String()}
	case ctx.Err() != nil:
		t.Fatalf("%s %v timed out:\n%s", filepath.Base(bin), args, out.String())
	case errors.As(err, &ee):
		return cmdResult{out: out.String(), code: ee.ExitCode()}
	default:
		t.Fatalf("%s %v: %v", filepath.Base(bin), args, err)
	}
	return cmdResult{}
}

// cosign runs the real cosign offline.
func cosign(t testing.TB, args ...string) cmdResult {
	t.Helper()
	return exe(t, []string{"COSIGN_PASSWORD=test-password"}, cosignBin, args...)
}

// csig runs the nri-csig binary.
func csig(t testing.TB, args ...string) cmdResult {
	t.Helper()
	return exe(t, nil, csigBin, args...)
}

// Offline key-based flags.
var (
	cosignSignFlags   = []string{"sign", "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--yes"}
	cosignVerifyFlags = []string{"verify", "--insecure-ignore-tlog=true", "--allow-http-registry"}
)

func startRegistry(t testing.TB, referrersAPI bool) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
		ggcrregistry.WithReferrersSupport(referrersAPI),
	))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// pushImage pushes img as host/repo:v1 and returns the tag and the digest reference.
func pushImage(t testing.TB, host, repo string, img v1.Image) (tag, digestRef string) {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.String(), ref.Context().Digest(d.String()).String()
}

func randomImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// cosignKeyPair makes a cosign key pair in dir: ECDSA P-256 from
// "cosign generate-key-pair", or an RSA-2048 key imported with
// "cosign import-key-pair". It returns the cosign.key and cosign.pub paths.
func cosignKeyPair(t testing.TB, kind string) (priv, pub string) {
	t.Helper()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "cosign")
	switch kind {
	case "ecdsa":
		if r := cosign(t, "generate-key-pair", "--output-key-prefix", prefix); r.code != 0 {
			t.Fatalf("cosign generate-key-pair: %s", r.out)
		}
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pemPath := filepath.Join(dir, "rsa.pem")
		if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := cosign(t, "import-key-pair", "--key", pemPath, "--output-key-prefix", prefix); r.code != 0 {
			t.Fatalf("cosign import-key-pair: %s", r.out)
		}
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	return prefix + ".key", prefix + ".pub"
}
