package notaryverify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/notaryproject/notation-core-go/revocation"
	revocationresult "github.com/notaryproject/notation-core-go/revocation/result"
	notarysig "github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// Envelope media types notation signs with.
const (
	MediaTypeJWS  = jws.MediaTypeEnvelope  // application/jose+json, signature.JWSMediaType
	MediaTypeCOSE = cose.MediaTypeEnvelope // application/cose, signature.COSEMediaType
)

// MaxEnvelopeSize bounds a signature envelope parsed: what discovery reads of
// a notation layer. Real notation envelopes are a few KiB: the signed payload
// plus the certificate chain.
const MaxEnvelopeSize = signature.MaxBundleSize

// storeName names the one trust store (of each type) compiled from a witness.
const storeName = "witness"

// artifactReference is the reference handed to notation. Its trust policy
// has registry scope "*", so the repository does not matter; notation only
// requires a reference of the form registry/repository@digest.
const artifactReference = "nri-csig.invalid/image@"

// Verifier judges Notary Project signature envelopes against the trust of
// one witness of kind x509. It holds no mutable state: safe for concurrent
// use.
type Verifier struct {
	notation notation.Verifier
	// timestamped: the trust requires a trusted timestamp always, so a
	// verified signature does not end with its certificate chain.
	timestamped bool
}

var (
	_ verify.CertVerifier = (*Verifier)(nil)
	_ verify.CertExpiry   = (*Verifier)(nil)
)

// New compiles t into a notation trust policy and trust store. It fails when
// notation refuses the policy (e.g. a malformed identity), or when t asks for
// a revocation check, which needs the network.
func New(t *policy.X509Trust) (*Verifier, error) {
	if t == nil {
		return nil, errors.New("notaryverify: no x509 trust")
	}
	if t.Revocation != "" && t.Revocation != policy.X509RevocationSkip {
		return nil, fmt.Errorf("notaryverify: revocation %q is not supported offline; use %q", t.Revocation, policy.X509RevocationSkip)
	}
	if len(t.CACertificates) == 0 {
		return nil, errors.New("notaryverify: no CA certificates")
	}
	store := memoryStore{truststore.TypeCA: t.CACertificates}
	stores := []string{string(truststore.TypeCA) + ":" + storeName}
	if len(t.TSACertificates) > 0 {
		store[truststore.TypeTSA] = t.TSACertificates
		stores = append(stores, string(truststore.TypeTSA)+":"+storeName)
	}
	sv := trustpolicy.SignatureVerification{
		VerificationLevel: trustpolicy.LevelStrict.Name,
		// No network on the decision path: revocation is not checked.
		Override: map[trustpolicy.ValidationType]trustpolicy.ValidationAction{
			trustpolicy.TypeRevocation: trustpolicy.ActionSkip,
		},
	}
	if len(t.TSACertificates) > 0 {
		sv.VerifyTimestamp = trustpolicy.OptionAlways
		if t.VerifyTimestamp != "" {
			sv.VerifyTimestamp = trustpolicy.TimestampOption(t.VerifyTimestamp)
		}
	}
	doc := &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:                  "x509-witness",
			RegistryScopes:        []string{"*"},
			SignatureVerification: sv,
			TrustStores:           stores,
			TrustedIdentities:     t.TrustedIdentities,
		}},
	}
	v, err := verifier.NewWithOptions(doc, store, nil, verifier.VerifierOptions{
		RevocationCodeSigningValidator:  offline{},
		RevocationTimestampingValidator: offline{},
	})
	if err != nil {
		return nil, fmt.Errorf("notaryverify: %w", err)
	}
	return &Verifier{notation: v, timestamped: sv.VerifyTimestamp == trustpolicy.OptionAlways}, nil
}

// ValidUntil returns when a signature Verify accepted stops verifying by
// time alone (verify.CertExpiry): its own expiry, if it has one, and, unless
// a trusted timestamp is always required, the earliest end of its signing
// certificate chain, which strict verification requires to be valid now.
// With verifyTimestamp afterCertExpiry the chain's end is kept too: the
// timestamp was not checked while the chain was valid. Zero: never.
func (v *Verifier) ValidUntil(sig verify.CertSignature) time.Time {
	env, err := notarysig.ParseEnvelope(sig.MediaType, sig.Blob)
	if err != nil {
		return time.Time{}
	}
	content, err := env.Content()
	if err != nil {
		return time.Time{}
	}
	end := content.SignerInfo.SignedAttributes.Expiry
	earlier := func(t time.Time) {
		if end.IsZero() || t.Before(end) {
			end = t
		}
	}
	if !v.timestamped || len(content.SignerInfo.UnsignedAttributes.TimestampSignature) == 0 {
		for _, c := range content.SignerInfo.CertificateChain {
			earlier(c.NotAfter)
		}
	}
	return end
}

// Verify reports nil when sig is a Notary Project signature of image digest
// made under v's trust (verify.CertVerifier).
func (v *Verifier) Verify(digest string, sig verify.CertSignature) error {
	if sig.Format != verify.FormatNotation {
		return refusal(verify.ErrBadSignature, "a %s signature is not a Notary Project signature", sig.Format)
	}
	return v.VerifyEnvelope(digest, sig.MediaType, sig.Blob)
}

// VerifyEnvelope reports nil when envelope, of media type mediaType, is a
// Notary Project signature of image digest made under v's trust. A valid
// signature over another digest wraps verify.ErrDigestMismatch; any other
// refusal wraps verify.ErrBadSignature with notation's reason.
func (v *Verifier) VerifyEnvelope(digest, mediaType string, envelope []byte) error {
	if mediaType != MediaTypeJWS && mediaType != MediaTypeCOSE {
		return refusal(verify.ErrBadSignature, "envelope media type %q is not a Notary Project signature (want %s or %s)",
			mediaType, MediaTypeJWS, MediaTypeCOSE)
	}
	if len(envelope) > MaxEnvelopeSize {
		return refusal(verify.ErrBadSignature, "Notary Project envelope of %d bytes, more than the %d read", len(envelope), MaxEnvelopeSize)
	}
	// The payload names the artifact the signature is for. It is read here
	// untrusted, only to hand notation the descriptor to check against;
	// notation then authenticates the payload, and the digest is compared
	// only once it has.
	target, err := targetArtifact(mediaType, envelope)
	if err != nil {
		return refusal(verify.ErrBadSignature, "%v", err)
	}
	opts := notation.VerifierVerifyOptions{
		ArtifactReference:  artifactReference + target.Digest.String(),
		SignatureMediaType: mediaType,
	}
	if _, err := v.notation.Verify(context.Background(), target, envelope, opts); err != nil {
		return refusal(verify.ErrBadSignature, "Notary Project signature refused: %v", err)
	}
	if got := target.Digest.String(); got != digest {
		return refusal(verify.ErrDigestMismatch, "the Notary Project signature is for %s, another image", got)
	}
	return nil
}

// refused is a refusal that reads as its message and is (errors.Is) one of
// pkg/verify's reasons, without repeating that reason's text.
type refused struct {
	msg    string
	reason error
}

func (r *refused) Error() string { return r.msg }
func (r *refused) Unwrap() error { return r.reason }

func refusal(reason error, format string, args ...any) error {
	return &refused{msg: fmt.Sprintf(format, args...), reason: reason}
}

// targetArtifact reads the descriptor a signature envelope's payload names,
// without verifying the envelope.
func targetArtifact(mediaType string, envelope []byte) (ocispec.Descriptor, error) {
	env, err := notarysig.ParseEnvelope(mediaType, envelope)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("unreadable Notary Project envelope: %v", err)
	}
	content, err := env.Content()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("unreadable Notary Project envelope: %v", err)
	}
	var payload struct {
		TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
	}
	if err := json.Unmarshal(content.Payload.Content, &payload); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("unreadable Notary Project payload: %v", err)
	}
	if err := payload.TargetArtifact.Digest.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the Notary Project payload names no valid target digest: %v", err)
	}
	return payload.TargetArtifact, nil
}

// memoryStore is a notation trust store held in memory: certificates by
// store type, all under the one name storeName.
type memoryStore map[truststore.Type][]*x509.Certificate

func (s memoryStore) GetCertificates(_ context.Context, t truststore.Type, name string) ([]*x509.Certificate, error) {
	certs, ok := s[t]
	if !ok || name != storeName {
		return nil, truststore.TrustStoreError{Msg: fmt.Sprintf("no trust store %s:%s", t, name)}
	}
	return certs, nil
}

// offline is the revocation validator used where notation would otherwise
// go to the network (OCSP, CRL): every certificate is reported as having no
// revocation method. Revocation of x509 witnesses' signatures is done by
// the bundle (revoking the witness's fingerprint), not by the CA.
type offline struct{}

func (offline) ValidateContext(_ context.Context, opts revocation.ValidateContextOptions) ([]*revocationresult.CertRevocationResult, error) {
	out := make([]*revocationresult.CertRevocationResult, len(opts.CertChain))
	for i := range out {
		out[i] = &revocationresult.CertRevocationResult{Result: revocationresult.ResultNonRevokable}
	}
	return out, nil
}
