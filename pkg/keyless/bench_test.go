package keyless

import (
	"testing"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
)

// BenchmarkVerifyBundle is the cost of one keyless bundle judged by one
// witness (chain, SCT, inclusion proof, checkpoint, SET, TSA, identity):
// the pre-verification path pays it once per (signature, witness).
func BenchmarkVerifyBundle(b *testing.B) {
	s, err := testsigstore.New()
	if err != nil {
		b.Fatal(err)
	}
	tr, err := s.TrustedRoot()
	if err != nil {
		b.Fatal(err)
	}
	blob, err := s.Sign(signer, issuer, testsigstore.Statement("app", digest, testsigstore.CosignSignPredicateType), testsigstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: issuer, Subject: signer}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyBundle(digest, blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewVerifierPublicGood is the cost of loading the public-good
// trusted root, paid per sigstore witness when a bundle is applied.
func BenchmarkNewVerifierPublicGood(b *testing.B) {
	tr := readFile(b, "testdata/public-good-trusted-root.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewVerifier(Trust{TrustedRoot: tr, Identities: []Identity{{Issuer: issuer, Subject: signer}}}); err != nil {
			b.Fatal(err)
		}
	}
}
