package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// Test keys are generated once per run; nothing secret is checked in.
var (
	keysOnce sync.Once
	ecKeys   []*ecdsa.PrivateKey
	rsaOnce  sync.Once
	rsaKey   *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		for range 4 {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			ecKeys = append(ecKeys, k)
		}
	})
	// RSA key generation is slow, very slow under fuzzing instrumentation:
	// only tests that use {{RSA}} pay for it.
}

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// ecPEM returns the public PEM of test EC key i, indented for a YAML block.
func ecPEM(t testing.TB, i int, indent string) string {
	t.Helper()
	testKeys(t)
	return indentPEM(t, &ecKeys[i].PublicKey, indent)
}

func indentPEM(t testing.TB, pub any, indent string) string {
	t.Helper()
	s, err := EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return indent + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+indent)
}

func ecFP(t testing.TB, i int) string {
	t.Helper()
	testKeys(t)
	fp, err := Fingerprint(&ecKeys[i].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// fill replaces {{PEM0}}..{{PEM3}}, {{FP0}}..{{FP3}} and {{RSA}} in a bundle template.
func fill(t testing.TB, s string) string {
	t.Helper()
	testKeys(t)
	for i := range ecKeys {
		s = strings.ReplaceAll(s, "{{PEM"+string(rune('0'+i))+"}}", ecPEM(t, i, "        "))
		s = strings.ReplaceAll(s, "{{FP"+string(rune('0'+i))+"}}", ecFP(t, i))
	}
	if strings.Contains(s, "{{RSA}}") {
		s = strings.ReplaceAll(s, "{{RSA}}", indentPEM(t, &testRSAKey(t).PublicKey, "        "))
	}
	return s
}

// dA and dB are declared in allowlist_test.go.
const dC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

// validBundle has witnesses release (keys 0 and 1: rotation), qa (key 2) and
// legacy (the RSA key); policy prod needs release and qa in cluster c1,
// namespaces default and payments; policy anywhere (audit, 1 of 2) covers
// every namespace of every cluster but is disabled.
const validBundle = `apiVersion: nri-csig.io/v1alpha1
kind: PolicyBundle
metadata:
  name: fleet
spec:
  serial: 7
  description: test bundle
---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata:
  name: release
spec:
  description: release pipeline
  keys:
    - fingerprint: {{FP0}}
      algorithm: ECDSA_SHA_256
      provider: alikms
      region: cn-hangzhou
      keyId: key-1
      keyVersionId: v1
      publicKey: |
{{PEM0}}
    - publicKey: |
{{PEM1}}
---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata:
  name: qa
spec:
  keys:
    - publicKey: |
{{PEM2}}
---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata:
  name: legacy
spec:
  keys:
    - algorithm: RSA_PSS_SHA_256
      publicKey: |
{{RSA}}
---
apiVersion: nri-csig.io/v1alpha1
kind: SecurityPolicy
metadata:
  name: prod
spec:
  witnesses: [release, qa]
  clusters: [c1]
  namespaces: [default, payments]
  enabled: true
  note: production
---
apiVersion: nri-csig.io/v1alpha1
kind: SecurityPolicy
metadata:
  name: anywhere
spec:
  witnesses: [release, legacy]
  threshold: 1
  clusters: ["*"]
  namespaces: ["*"]
  mode: audit
---
apiVersion: nri-csig.io/v1alpha1
kind: Exemption
metadata:
  name: hotfix
spec:
  namespace: payments
  imageDigest: sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
  expires: 2026-12-01T00:00:00Z
  reason: INC-42 hotfix
---
apiVersion: nri-csig.io/v1alpha1
kind: Revocation
metadata:
  name: leaked
spec:
  keys: [{{FP1}}]
  imageDigests: [sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]
  effective: 2026-11-20T00:00:00Z
  reason: key leaked
`

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
