// Package bundletest holds the fixtures the policy model's and the bundle
// store's tests share: test keys generated once per run (nothing secret is
// checked in) and a valid bundle template. Tests only.
package bundletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

var (
	keysOnce sync.Once
	ecKeys   []*ecdsa.PrivateKey
	rsaOnce  sync.Once
	rsaKey   *rsa.PrivateKey
)

// EC returns the test EC keys (4 of them, P-256).
func EC() []*ecdsa.PrivateKey {
	keysOnce.Do(func() {
		for range 4 {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			ecKeys = append(ecKeys, k)
		}
	})
	return ecKeys
}

// RSA returns the test RSA key. Its generation is slow, very slow under
// fuzzing instrumentation: only tests that use {{RSA}} pay for it.
func RSA() *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// IndentPEM is pub's PEM, indented for a YAML block.
func IndentPEM(t testing.TB, pub any, indent string) string {
	t.Helper()
	b, err := keys.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return indent + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n"+indent)
}

// FP is the fingerprint of test EC key i.
func FP(t testing.TB, i int) string {
	t.Helper()
	fp, err := keys.Fingerprint(&EC()[i].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// Fill replaces {{PEM0}}..{{PEM3}}, {{FP0}}..{{FP3}} and {{RSA}} in a bundle template.
func Fill(t testing.TB, s string) string {
	t.Helper()
	for i := range EC() {
		s = strings.ReplaceAll(s, "{{PEM"+string(rune('0'+i))+"}}", IndentPEM(t, &ecKeys[i].PublicKey, "        "))
		s = strings.ReplaceAll(s, "{{FP"+string(rune('0'+i))+"}}", FP(t, i))
	}
	if strings.Contains(s, "{{RSA}}") {
		s = strings.ReplaceAll(s, "{{RSA}}", IndentPEM(t, &RSA().PublicKey, "        "))
	}
	return s
}

// BundleText returns ValidBundle at a serial, with policy prod enabled or not.
func BundleText(t testing.TB, serial string, prodEnabled bool) []byte {
	t.Helper()
	s := strings.Replace(ValidBundle, "serial: 7", "serial: "+serial, 1)
	if !prodEnabled {
		s = strings.Replace(s, "  enabled: true\n", "", 1)
	}
	return []byte(Fill(t, s))
}

// ValidBundle has witnesses release (keys 0 and 1: rotation), qa (key 2) and
// legacy (the RSA key); policy prod needs release and qa in cluster c1,
// namespaces default and payments; policy anywhere (audit, 1 of 2) covers
// every namespace of every cluster but is disabled.
const ValidBundle = `apiVersion: nri-csig.io/v1alpha1
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

// Dated returns BundleText at a serial (prod enabled) with a validity header
// (zero times are left out).
func Dated(t testing.TB, serial string, notBefore, expires time.Time) []byte {
	t.Helper()
	hdr := ""
	if !notBefore.IsZero() {
		hdr += "  notBefore: " + notBefore.Format(time.RFC3339) + "\n"
	}
	if !expires.IsZero() {
		hdr += "  expires: " + expires.Format(time.RFC3339) + "\n"
	}
	return []byte(strings.Replace(string(BundleText(t, serial, true)), "  description: test bundle\n", "  description: test bundle\n"+hdr, 1))
}
