package policy

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"testing"

	"github.com/nri-csig/nri-csig/internal/bundletest"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// The keys and the bundle template are internal/bundletest's, shared with
// the bundle store's tests.
var ecKeys []*ecdsa.PrivateKey

func testKeys(t testing.TB) {
	t.Helper()
	ecKeys = bundletest.EC()
}

func testRSAKey(t testing.TB) *rsa.PrivateKey { return bundletest.RSA() }

// ecPEM returns the public PEM of test EC key i, indented for a YAML block.
func ecPEM(t testing.TB, i int, indent string) string {
	t.Helper()
	testKeys(t)
	return indentPEM(t, &ecKeys[i].PublicKey, indent)
}

func indentPEM(t testing.TB, pub any, indent string) string {
	return bundletest.IndentPEM(t, pub, indent)
}

func ecFP(t testing.TB, i int) string { return bundletest.FP(t, i) }

func fill(t testing.TB, s string) string {
	t.Helper()
	testKeys(t)
	return bundletest.Fill(t, s)
}

// bundleText returns the valid test bundle at a serial, with prod enabled or not.
func bundleText(t testing.TB, serial string, prodEnabled bool) []byte {
	return bundletest.BundleText(t, serial, prodEnabled)
}

// dA and dB are declared in allowlist_test.go.
const dC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

const validBundle = bundletest.ValidBundle

func mustParse(t testing.TB, text string) *Bundle {
	t.Helper()
	b, err := ParseBundle("bundle.yaml", []byte(fill(t, text)))
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	return b
}

func mustLocal(t testing.TB, k *ecdsa.PrivateKey) *local.Key {
	t.Helper()
	s, err := local.New(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
