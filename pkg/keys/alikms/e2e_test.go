//go:build e2e && alikms

// Real Alibaba Cloud KMS. Run with:
//
//	NRI_CSIG_TEST_KMS_KEY=alikms://cn-hangzhou/alias/... ALIBABA_CLOUD_ACCESS_KEY_ID=... \
//	ALIBABA_CLOUD_ACCESS_KEY_SECRET=... go test -tags 'e2e alikms' -run E2E ./pkg/keys/alikms/
//
// NRI_CSIG_TEST_KMS_EC_KEY names an EC_P256 key for TestE2ERealKMSEC.
// NRI_CSIG_TEST_KMS_ENDPOINT and NRI_CSIG_TEST_KMS_CA select a dedicated gateway
// (then the references need ?version=, see the package comment).
package alikms_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
)

func TestE2ERealKMS(t *testing.T) {
	ref := os.Getenv("NRI_CSIG_TEST_KMS_KEY")
	if ref == "" {
		t.Skip("NRI_CSIG_TEST_KMS_KEY is not set")
	}
	cfg := alikms.Config{Endpoint: os.Getenv("NRI_CSIG_TEST_KMS_ENDPOINT"), CAFile: os.Getenv("NRI_CSIG_TEST_KMS_CA")}
	for _, alg := range []keys.Algorithm{keys.RSAPKCS1SHA256, keys.RSAPSSSHA256} {
		t.Run(string(alg), func(t *testing.T) {
			s, err := keyref.Open(t.Context(), ref, keyref.Options{Algorithm: alg, KMS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", s.Info())
			d := sha256.Sum256([]byte("nri-csig e2e"))
			sig, err := s.SignDigest(t.Context(), d[:])
			if err != nil {
				t.Fatal(err)
			}
			pub, err := s.PublicKey(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := keys.VerifyDigest(pub, alg, d[:], sig); err != nil {
				t.Fatal(err)
			}
			if alg == keys.RSAPSSSHA256 {
				// KMS does not document its PSS salt length; record what it is.
				err := rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
				t.Logf("PSS salt length == hash length (32): %v", err == nil)
			}
		})
	}
}

// TestE2ERealKMSEC signs with an EC_P256 key: ECDSA_SHA_256 answers must be
// ASN.1 DER signatures that crypto/ecdsa and the node's check accept.
func TestE2ERealKMSEC(t *testing.T) {
	ref := os.Getenv("NRI_CSIG_TEST_KMS_EC_KEY")
	if ref == "" {
		t.Skip("NRI_CSIG_TEST_KMS_EC_KEY is not set")
	}
	cfg := alikms.Config{Endpoint: os.Getenv("NRI_CSIG_TEST_KMS_ENDPOINT"), CAFile: os.Getenv("NRI_CSIG_TEST_KMS_CA")}
	s, err := keyref.Open(t.Context(), ref, keyref.Options{KMS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.KeySpec != keys.SpecECP256 || info.Algorithm != keys.ECDSASHA256 {
		t.Fatalf("Info() = %+v; want an EC_P256 key signing with ECDSA_SHA_256", info)
	}
	d := sha256.Sum256([]byte("nri-csig e2e ec"))
	sig, err := s.SignDigest(t.Context(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublicKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatal("crypto/ecdsa rejects the KMS signature (not ASN.1 DER?)")
	}
	if err := keys.VerifyDigest(pub, keys.ECDSASHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
}
