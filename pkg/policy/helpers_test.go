package policy

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"testing"

	"github.com/nri-csig/nri-csig/internal/bundletest"
)

// The keys and the bundle template are internal/bundletest's, shared with
// the bundle store's tests.
var ecKeys []*ecdsa.PrivateKey

func testKeys(t testing.TB) {
	t.Helper()
	ecKeys = bundletest.EC()
}

func testRSAKey(t testing.TB) *rsa.PrivateKey { return bundletest.RSA() }

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
