package keyless

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

func legacy(t *testing.T, subject string, o testsigstore.Options) verify.CertSignature {
	t.Helper()
	s, _ := sigstore(t)
	l, err := s.SignLegacy(subject, issuer, "registry.example/app", digest, o)
	if err != nil {
		t.Fatal(err)
	}
	return verify.CertSignature{Format: verify.FormatLegacy, MediaType: signature.SimpleSigningMediaType, Blob: l.Payload, Annotations: l.Annotations}
}

// Keyless cosign v2 signatures (.sig layers with the certificate and the
// Rekor entry in annotations) are judged like bundles.
func TestVerifyLegacyKeyless(t *testing.T) {
	v := verifier(t, nil)
	if err := v.Verify(digest, legacy(t, signer, testsigstore.Options{})); err != nil {
		t.Fatalf("right identity: %v", err)
	}
	past := time.Now().Add(-time.Hour)
	if err := v.Verify(digest, legacy(t, signer, testsigstore.Options{NotBefore: past, IntegratedTime: past.Add(time.Minute), NoTimestamp: true})); err != nil {
		t.Fatalf("expired now, logged in time: %v", err)
	}
	tampered := legacy(t, signer, testsigstore.Options{})
	tampered.Annotations[signature.RekorBundleAnnotation] = strings.Replace(tampered.Annotations[signature.RekorBundleAnnotation], `"logIndex":7`, `"logIndex":8`, 2)
	noCert := legacy(t, signer, testsigstore.Options{})
	delete(noCert.Annotations, signature.CertificateAnnotation)
	otherPayload := legacy(t, signer, testsigstore.Options{})
	otherPayload.Blob = []byte(strings.Replace(string(otherPayload.Blob), digest, otherImg, 1))

	for _, tc := range []struct {
		name   string
		sig    verify.CertSignature
		digest string
		want   error
		reason string
	}{
		{"wrong SAN", legacy(t, "intruder@example.com", testsigstore.Options{}), digest, ErrIdentity, `expected SAN value "release@example.com", got "intruder@example.com"`},
		{"another image", legacy(t, signer, testsigstore.Options{}), otherImg, verify.ErrDigestMismatch, "payload names"},
		{"payload edited", otherPayload, otherImg, ErrUntrusted, ""},
		{"tampered signed entry timestamp", tampered, digest, ErrUntrusted, "not enough verified log entries"},
		{"no tlog entry", legacy(t, signer, testsigstore.Options{NoTlog: true}), digest, ErrUntrusted, "not enough verified log entries"},
		{"expired at signing time, no timestamp", legacy(t, signer, testsigstore.Options{NotBefore: time.Now().Add(-2 * time.Hour), IntegratedTime: time.Now(), NoTimestamp: true}), digest, ErrUntrusted, "outside certificate validity"},
		{"no SCT", legacy(t, signer, testsigstore.Options{NoSCT: true}), digest, ErrUntrusted, "SCT"},
		{"no certificate", noCert, digest, signature.ErrMalformed, "is not a PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.digest, tc.sig)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Verify: %v, want %v with %q", err, tc.want, tc.reason)
			}
		})
	}
}
