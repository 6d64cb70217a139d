package signature

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// The Sigstore bundle is decoded with the generated types of
// github.com/sigstore/protobuf-specs (protojson, strict: unknown fields and
// duplicates are refused), not with github.com/sigstore/sigstore-go.
// Measured on the nri-csig binary (CGO_ENABLED=0, -trimpath): 11.8 MB
// without either; +5.5 MB for the protobuf runtime alone, which the daemon
// carries anyway for NRI; +0.6 MB more for protobuf-specs' bundle types;
// sigstore-go's bundle and verify packages add about +10 MB on top (TUF,
// Rekor, x509 and timestamp code a key-based offline verifier must not use).
// The in-toto statement inside the envelope is parsed by hand: three fields,
// not worth the in-toto attestation module.

// InTotoPayloadType is the DSSE payload type of an in-toto statement.
const InTotoPayloadType = "application/vnd.in-toto+json"

// In-toto statement types accepted.
const (
	InTotoStatementV1  = "https://in-toto.io/Statement/v1"
	InTotoStatementV01 = "https://in-toto.io/Statement/v0.1"
)

// SigstoreBundle is the key-based subset of a Sigstore bundle: a DSSE envelope.
type SigstoreBundle struct {
	MediaType string
	// KeyHint is verificationMaterial.publicKey.hint, if any (informational).
	KeyHint string
	// Certificate: verificationMaterial carries a certificate or chain
	// (keyless signing) rather than a key hint. Such a bundle is judged by
	// a certificate witness, on its whole content.
	Certificate  bool
	DSSEEnvelope *Envelope
}

// Envelope is a DSSE envelope.
type Envelope struct {
	Payload     []byte
	PayloadType string
	Signatures  [][]byte
}

// maxSignatures bounds the signatures of one DSSE envelope; maxSubjects the
// subjects of one statement.
const (
	maxSignatures = 16
	maxSubjects   = 64
)

// ParseSigstoreBundle parses an untrusted Sigstore bundle of media type
// BundleMediaType that carries a DSSE envelope. Transparency-log entries
// and timestamps are parsed for well-formedness but not used.
func ParseSigstoreBundle(b []byte) (*SigstoreBundle, error) {
	if err := checkJSON(b, MaxBundleSize); err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	var pb protobundle.Bundle
	if err := protojson.Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w: %v", ErrMalformed, err)
	}
	if pb.GetMediaType() != BundleMediaType {
		return nil, fmt.Errorf("sigstore bundle: %w: mediaType %q, want %q", ErrWrongType, pb.GetMediaType(), BundleMediaType)
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		if pb.GetMessageSignature() != nil {
			return nil, fmt.Errorf("sigstore bundle: %w: a messageSignature signs a blob, not an image; sign the image with cosign sign", ErrWrongType)
		}
		return nil, fmt.Errorf("sigstore bundle: %w: no dsseEnvelope", ErrMalformed)
	}
	if env.GetPayloadType() != InTotoPayloadType {
		return nil, fmt.Errorf("sigstore bundle: %w: DSSE payloadType %q, want %q", ErrWrongType, env.GetPayloadType(), InTotoPayloadType)
	}
	if len(env.GetPayload()) == 0 {
		return nil, fmt.Errorf("sigstore bundle: %w: empty DSSE payload", ErrMalformed)
	}
	sigs := env.GetSignatures()
	if len(sigs) == 0 || len(sigs) > maxSignatures {
		return nil, fmt.Errorf("sigstore bundle: %w: dsseEnvelope has %d signatures, want 1 to %d", ErrMalformed, len(sigs), maxSignatures)
	}
	out := &SigstoreBundle{
		MediaType:    pb.GetMediaType(),
		KeyHint:      pb.GetVerificationMaterial().GetPublicKey().GetHint(),
		Certificate:  pb.GetVerificationMaterial().GetCertificate() != nil || pb.GetVerificationMaterial().GetX509CertificateChain() != nil,
		DSSEEnvelope: &Envelope{Payload: env.GetPayload(), PayloadType: env.GetPayloadType()},
	}
	for i, s := range sigs {
		if len(s.GetSig()) == 0 {
			return nil, fmt.Errorf("sigstore bundle: %w: empty DSSE signature %d", ErrMalformed, i)
		}
		out.DSSEEnvelope.Signatures = append(out.DSSEEnvelope.Signatures, s.GetSig())
	}
	return out, nil
}

// PAE is the DSSE pre-authentication encoding: the bytes a DSSE signature covers.
func PAE(payloadType string, payload []byte) []byte {
	var sb strings.Builder
	sb.WriteString("DSSEv1 ")
	sb.WriteString(strconv.Itoa(len(payloadType)))
	sb.WriteByte(' ')
	sb.WriteString(payloadType)
	sb.WriteByte(' ')
	sb.WriteString(strconv.Itoa(len(payload)))
	sb.WriteByte(' ')
	sb.Write(payload)
	return []byte(sb.String())
}

// Statement is the part of an in-toto statement read here.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
}

// Subject is one in-toto subject.
type Subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// ParseStatement parses an untrusted in-toto statement that must be a cosign
// image signature (predicate type CosignSignPredicateType).
func ParseStatement(b []byte) (*Statement, error) {
	var s Statement
	if err := decodeLoose(b, MaxBundleSize, &s); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	if s.Type != InTotoStatementV1 && s.Type != InTotoStatementV01 {
		return nil, fmt.Errorf("in-toto statement: %w: _type %q", ErrWrongType, s.Type)
	}
	if s.PredicateType != CosignSignPredicateType {
		return nil, fmt.Errorf("in-toto statement: %w: predicateType %q is an attestation, not an image signature (want %q)", ErrWrongType, s.PredicateType, CosignSignPredicateType)
	}
	if len(s.Subject) == 0 || len(s.Subject) > maxSubjects {
		return nil, fmt.Errorf("in-toto statement: %w: %d subjects, want 1 to %d", ErrMalformed, len(s.Subject), maxSubjects)
	}
	return &s, nil
}

// Covers reports whether a subject of s has the sha256 digest d ("sha256:<hex>").
func (s *Statement) Covers(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok {
		return false
	}
	for _, sub := range s.Subject {
		if sub.Digest["sha256"] == hex {
			return true
		}
	}
	return false
}

// Digests returns the sha256 subject digests of s, as "sha256:<hex>".
func (s *Statement) Digests() []string {
	var out []string
	for _, sub := range s.Subject {
		if h, ok := sub.Digest["sha256"]; ok {
			out = append(out, "sha256:"+h)
		}
	}
	return out
}

// DecodeBase64 decodes standard base64, the encoding cosign and protojson
// write; URL-safe base64 is accepted too, since protojson parsers accept it.
func DecodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty base64", ErrMalformed)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(s)
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: corrupt base64", ErrMalformed)
	case len(b) == 0:
		// The decoders skip newlines: "\n" decodes to nothing.
		return nil, fmt.Errorf("%w: empty base64", ErrMalformed)
	}
	return b, nil
}
