package notaryverify

import (
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	notarysig "github.com/notaryproject/notation-core-go/signature"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/notationtest"
	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

var (
	imageDigest = digest.FromString("the image manifest")
	image       = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: imageDigest, Size: 512}
	buildSystem = pkix.Name{CommonName: "build", Organization: []string{"example"}, Province: []string{"Zhejiang"}, Country: []string{"CN"}}
)

// signWithNotation signs desc as the notation CLI does, with notation-go's
// signer.
func signWithNotation(t *testing.T, leaf *x509test.Leaf, desc ocispec.Descriptor, mediaType string) []byte {
	t.Helper()
	return notationtest.Sign(t, leaf, desc, mediaType)
}

// signAt builds an envelope signed at signingTime (notation's signer always
// signs "now"), to sign with a certificate that has since expired.
func signAt(t *testing.T, leaf *x509test.Leaf, desc ocispec.Descriptor, signingTime, expiry time.Time) []byte {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"targetArtifact": desc})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := notarysig.NewLocalSigner(leaf.Chain, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	env, err := notarysig.NewEnvelope(MediaTypeJWS)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := env.Sign(&notarysig.SignRequest{
		Payload:       notarysig.Payload{ContentType: "application/vnd.cncf.notary.payload.v1+json", Content: payload},
		Signer:        ls,
		SigningTime:   signingTime,
		Expiry:        expiry,
		SigningScheme: notarysig.SigningSchemeX509,
		SigningAgent:  "nri-csig tests",
	})
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func newVerifier(t *testing.T, trust policy.X509Trust) *Verifier {
	t.Helper()
	v, err := New(&trust)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func validLeaf(t *testing.T, ca *x509test.CA) *x509test.Leaf {
	return ca.Leaf(t, buildSystem, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
}

func TestVerifyEnvelopeAcceptsTheTrustedIdentity(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	leaf := validLeaf(t, ca)
	for _, identity := range []string{"x509.subject: C=CN, ST=Zhejiang, O=example, CN=build", "x509.subject:C=CN,ST=Zhejiang,O=example", "*"} {
		v := newVerifier(t, policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{identity}})
		for _, mt := range []string{MediaTypeJWS, MediaTypeCOSE} {
			if err := v.VerifyEnvelope(imageDigest.String(), mt, signWithNotation(t, leaf, image, mt)); err != nil {
				t.Errorf("identity %q, %s: %v", identity, mt, err)
			}
		}
	}
}

func TestVerifyEnvelopeRefuses(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	other := x509test.NewCA(t, "build CA") // same name, other key
	leaf := validLeaf(t, ca)
	trust := policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"x509.subject: C=CN, ST=Zhejiang, O=example, CN=build"}}
	good := signWithNotation(t, leaf, image, MediaTypeJWS)
	tampered := []byte(strings.Replace(string(good), `"signature":"`, `"signature":"AAAA`, 1))
	otherImage := image
	otherImage.Digest = digest.FromString("another image")
	expired := ca.Leaf(t, buildSystem, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))

	cases := []struct {
		name     string
		trust    policy.X509Trust
		envelope []byte
		want     error
		reason   string
	}{
		{"wrong identity", policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"x509.subject: C=CN, ST=Zhejiang, O=example, CN=someone else"}},
			good, verify.ErrBadSignature, "does not match the X.509 trusted identities"},
		{"other CA", policy.X509Trust{CACertificates: other.Chain(), TrustedIdentities: trust.TrustedIdentities},
			good, verify.ErrBadSignature, "does not contain any trusted certificate"},
		{"expired certificate", trust,
			signAt(t, expired, image, time.Now().Add(-90*time.Minute), time.Time{}), verify.ErrBadSignature, "validity period, it was expired"},
		{"expired signature", trust,
			signAt(t, leaf, image, time.Now().Add(-30*time.Second), time.Now().Add(-time.Second)), verify.ErrBadSignature, "digital signature has expired"},
		{"another image", trust, signWithNotation(t, leaf, otherImage, MediaTypeJWS), verify.ErrDigestMismatch, otherImage.Digest.String()},
		{"tampered", trust, tampered, verify.ErrBadSignature, "signature"},
		{"garbage", trust, []byte("{}"), verify.ErrBadSignature, "unreadable"},
		{"TSA required, no timestamp", policy.X509Trust{CACertificates: ca.Chain(), TSACertificates: other.Chain(), TrustedIdentities: trust.TrustedIdentities},
			good, verify.ErrBadSignature, "no timestamp countersignature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := newVerifier(t, c.trust).VerifyEnvelope(imageDigest.String(), MediaTypeJWS, c.envelope)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.reason)
			}
		})
	}
}

func TestVerifyTakesNotationSignaturesOnly(t *testing.T) {
	if MediaTypeJWS != signature.JWSMediaType || MediaTypeCOSE != signature.COSEMediaType {
		t.Fatal("the envelope media types differ from discovery's")
	}
	ca := x509test.NewCA(t, "build CA")
	v := newVerifier(t, policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}})
	blob := signWithNotation(t, validLeaf(t, ca), image, MediaTypeJWS)
	if err := v.Verify(imageDigest.String(), verify.CertSignature{Format: verify.FormatNotation, MediaType: MediaTypeJWS, Blob: blob}); err != nil {
		t.Fatal(err)
	}
	err := v.Verify(imageDigest.String(), verify.CertSignature{Format: verify.FormatBundle, MediaType: MediaTypeJWS, Blob: blob})
	if !errors.Is(err, verify.ErrBadSignature) {
		t.Fatalf("a Sigstore bundle judged by an x509 witness: %v", err)
	}
}

func TestVerifyEnvelopeBounds(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	v := newVerifier(t, policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}})
	good := signWithNotation(t, validLeaf(t, ca), image, MediaTypeJWS)
	if err := v.VerifyEnvelope(imageDigest.String(), "application/vnd.dev.cosign.simplesigning.v1+json", good); !errors.Is(err, verify.ErrBadSignature) {
		t.Errorf("other media type: %v", err)
	}
	big := append(append([]byte{}, good...), make([]byte, MaxEnvelopeSize)...)
	if err := v.VerifyEnvelope(imageDigest.String(), MediaTypeJWS, big); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("oversized envelope: %v", err)
	}
	// A JWS envelope judged as COSE does not parse.
	if err := v.VerifyEnvelope(imageDigest.String(), MediaTypeCOSE, good); !errors.Is(err, verify.ErrBadSignature) {
		t.Errorf("JWS as COSE: %v", err)
	}
}

func TestNewVerifierRefusesABadPolicy(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	for _, trust := range []policy.X509Trust{
		{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}, Revocation: "ocsp"},
		{TrustedIdentities: []string{"*"}},
		{CACertificates: ca.Chain(), TrustedIdentities: []string{"CN=build"}},
		{CACertificates: ca.Chain()},
	} {
		if _, err := New(&trust); err == nil {
			t.Errorf("%+v: accepted", trust)
		}
	}
}

func TestVerifyEnvelopeConcurrently(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	v := newVerifier(t, policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}})
	good := signWithNotation(t, validLeaf(t, ca), image, MediaTypeJWS)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := v.VerifyEnvelope(imageDigest.String(), MediaTypeJWS, good); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestValidUntilIsTheEndOfTheChainOrOfTheSignature(t *testing.T) {
	ca := x509test.NewCA(t, "build CA")
	leafEnd := time.Now().Add(time.Hour).Truncate(time.Second)
	leaf := ca.Leaf(t, buildSystem, time.Now().Add(-time.Minute), leafEnd)
	v := newVerifier(t, policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}})
	sig := func(blob []byte) verify.CertSignature {
		return verify.CertSignature{Format: verify.FormatNotation, MediaType: MediaTypeJWS, Blob: blob}
	}
	if got := v.ValidUntil(sig(signWithNotation(t, leaf, image, MediaTypeJWS))); !got.Equal(leafEnd) {
		t.Errorf("ValidUntil = %v, want the leaf's end %v", got, leafEnd)
	}
	sigEnd := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	if got := v.ValidUntil(sig(signAt(t, leaf, image, time.Now(), sigEnd))); !got.Equal(sigEnd) {
		t.Errorf("ValidUntil = %v, want the signature's expiry %v", got, sigEnd)
	}
	if got := v.ValidUntil(sig([]byte("{}"))); !got.IsZero() {
		t.Errorf("ValidUntil of garbage = %v", got)
	}
}
