package keyless

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// Reasons a keyless signature is refused, for errors.Is. A malformed or
// wrong-type bundle wraps signature.ErrMalformed or signature.ErrWrongType
// (an attestation is ErrWrongType), another image's signature
// verify.ErrDigestMismatch.
var (
	// ErrUntrusted: the bundle does not verify against the trusted root
	// (certificate chain, SCT, transparency log, timestamps or signature).
	ErrUntrusted = errors.New("not verified by the trusted root")
	// ErrIdentity: a valid bundle, but its certificate names no trusted identity.
	ErrIdentity = errors.New("certificate identity not trusted")
)

// Trust is what one witness trusts.
type Trust struct {
	// TrustedRoot is a trusted_root.json (Fulcio CAs, Rekor logs, CT logs,
	// TSAs), media type application/vnd.dev.sigstore.trustedroot+json;version=0.1.
	TrustedRoot []byte
	// Identities: a signature counts when its certificate matches one.
	Identities []Identity
	// InsecureIgnoreSCT accepts certificates without a verified SCT from a
	// CT log of the trusted root (cosign's --insecure-ignore-sct). Default:
	// an SCT is required.
	InsecureIgnoreSCT bool
	// InsecureIgnoreTlog accepts bundles without a verified transparency-log
	// entry (cosign's --insecure-ignore-tlog); the signing time must then
	// come from an RFC 3161 timestamp. Default: an entry with an inclusion
	// proof or a signed entry timestamp is required.
	InsecureIgnoreTlog bool
}

// Identity is one trusted signer: the certificate's OIDC issuer and its
// subject alternative name, each exact or a regular expression (Go syntax;
// matched as given, so anchor it).
type Identity struct {
	Issuer, IssuerRegExp   string
	Subject, SubjectRegExp string
}

// Verifier judges keyless bundles against one Trust. Safe for concurrent use.
type Verifier struct {
	v   *sgverify.Verifier
	ids []sgverify.CertificateIdentity
}

// NewVerifier compiles t. The signing time is always required: the
// transparency log's integrated time (from a signed entry timestamp) or an
// RFC 3161 timestamp, inside the certificate's validity. The current time
// is never used, so an expired short-lived certificate never counts
// without one.
func NewVerifier(t Trust) (*Verifier, error) {
	tr, err := root.NewTrustedRootFromJSON(t.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("sigstore trusted root: %w", err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, errors.New("sigstore trusted root: no certificateAuthorities (Fulcio): keyless certificates cannot chain to it")
	}
	if len(t.Identities) == 0 {
		return nil, errors.New("sigstore: no identities: name at least one issuer and subject")
	}
	opts := []sgverify.VerifierOption{sgverify.WithObserverTimestamps(1), sgverify.WithoutStatementPredicate()}
	if !t.InsecureIgnoreTlog {
		opts = append(opts, sgverify.WithTransparencyLog(1))
	}
	if !t.InsecureIgnoreSCT {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	v, err := sgverify.NewVerifier(tr, opts...)
	if err != nil {
		return nil, fmt.Errorf("sigstore verifier: %w", err)
	}
	out := &Verifier{v: v}
	for i, id := range t.Identities {
		ci, err := sgverify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp)
		if err != nil {
			return nil, fmt.Errorf("sigstore identity %d: %w", i+1, err)
		}
		out.ids = append(out.ids, ci)
	}
	return out, nil
}

// VerifyBundle reports nil when blob, a Sigstore bundle layer (media type
// signature.BundleMediaType, at most signature.MaxBundleSize bytes), is a
// keyless cosign signature of image digest ("sha256:<hex>") by one of the
// trusted identities.
func (v *Verifier) VerifyBundle(digest string, blob []byte) error {
	// The strict, bounded parse of package signature first: it refuses
	// oversized input, other bundle versions and message signatures, and
	// the statement is checked (a cosign signature of this digest, not an
	// attestation) before any certificate or log work.
	b, err := signature.ParseSigstoreBundle(blob)
	if err != nil {
		return err
	}
	st, err := signature.ParseStatement(b.DSSEEnvelope.Payload)
	if err != nil {
		return err
	}
	if !st.Covers(digest) {
		return fmt.Errorf("%w: statement subject %s", verify.ErrDigestMismatch, strings.Join(st.Digests(), ","))
	}
	sum, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		return fmt.Errorf("%w: digest %q", signature.ErrMalformed, digest)
	}
	_, err = v.verifyEntity(blob, "sha256", sum)
	return err
}

// verifyEntity runs sigstore-go on a bundle of any version, with the
// artifact digest the statement must name. It does no predicate check.
func (v *Verifier) verifyEntity(blob []byte, alg string, sum []byte) (*sgverify.VerificationResult, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(blob); err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w: %v", signature.ErrMalformed, err)
	}
	return v.verify(&b, alg, sum)
}

// verify runs sigstore-go on b: a certificate-signed bundle whose artifact
// (statement subject, or signed message) has digest sum.
func (v *Verifier) verify(b *bundle.Bundle, alg string, sum []byte) (*sgverify.VerificationResult, error) {
	if vc, err := b.VerificationContent(); err != nil || vc.Certificate() == nil {
		return nil, fmt.Errorf("sigstore bundle: %w: no certificate: a keyless signature carries its Fulcio certificate (a key-based bundle needs a witness of kind keys)", signature.ErrWrongType)
	}
	opts := make([]sgverify.PolicyOption, len(v.ids))
	for i, id := range v.ids {
		opts[i] = sgverify.WithCertificateIdentity(id)
	}
	res, err := v.v.Verify(b, sgverify.NewPolicy(sgverify.WithArtifactDigest(alg, sum), opts...))
	var idErr *sgverify.ErrNoMatchingCertificateIdentity
	switch {
	case errors.As(err, &idErr):
		return nil, fmt.Errorf("%w: %v", ErrIdentity, idErr)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return res, nil
}

// New returns the verifier of a witness of kind sigstore, for pkg/verify.
// It refuses trust material that sigstore-go cannot load (the bundle
// parser checked only its shape).
func New(t *policy.SigstoreTrust) (verify.CertVerifier, error) {
	if t == nil {
		return nil, errors.New("sigstore witness without trust material")
	}
	tr := Trust{TrustedRoot: []byte(t.TrustedRoot), InsecureIgnoreSCT: t.InsecureIgnoreSCT, InsecureIgnoreTlog: t.InsecureIgnoreTlog}
	for _, id := range t.Identities {
		tr.Identities = append(tr.Identities, Identity{Issuer: id.Issuer, IssuerRegExp: id.IssuerRegExp, Subject: id.Subject, SubjectRegExp: id.SubjectRegExp})
	}
	return NewVerifier(tr)
}

var _ verify.CertVerifier = (*Verifier)(nil)

// Verify is verify.CertVerifier: Sigstore bundles, and keyless cosign v2
// .sig layers, are judged (a Notary Project envelope is not this witness's).
func (v *Verifier) Verify(digest string, sig verify.CertSignature) error {
	if sig.Format == verify.FormatLegacy && sig.MediaType == signature.SimpleSigningMediaType {
		return v.verifyLegacy(digest, sig.Blob, sig.Annotations)
	}
	if sig.Format != verify.FormatBundle || sig.MediaType != signature.BundleMediaType {
		return fmt.Errorf("%w: a %s signature (%s) is not a Sigstore bundle", signature.ErrWrongType, sig.Format, sig.MediaType)
	}
	return v.VerifyBundle(digest, sig.Blob)
}
