package signature

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The Sigstore bundle is parsed by hand rather than with
// github.com/sigstore/sigstore-go or protobuf-specs: a node reads only the
// key-based, offline subset (a DSSE envelope and the in-toto statement in
// it), and those libraries would add several MB of protobuf, TUF, Rekor and
// x509 code to the daemon for fields it must ignore anyway (no tlog, no
// Fulcio). The subset below follows protobuf-specs sigstore_bundle.proto
// v0.3 in its protojson form.

// InTotoPayloadType is the DSSE payload type of an in-toto statement.
const InTotoPayloadType = "application/vnd.in-toto+json"

// In-toto statement types accepted.
const (
	InTotoStatementV1  = "https://in-toto.io/Statement/v1"
	InTotoStatementV01 = "https://in-toto.io/Statement/v0.1"
)

// maxSubjects bounds the subjects read from one statement.
const maxSubjects = 64

// Bundle is the key-based subset of a Sigstore bundle.
type Bundle struct {
	MediaType            string               `json:"mediaType"`
	VerificationMaterial VerificationMaterial `json:"verificationMaterial"`
	DSSEEnvelope         *Envelope            `json:"dsseEnvelope"`
	MessageSignature     *struct{}            `json:"messageSignature"`
}

// VerificationMaterial is read only for its key hint; tlog entries and
// timestamps are ignored (offline, key-based verification).
type VerificationMaterial struct {
	PublicKey *struct {
		Hint string `json:"hint"`
	} `json:"publicKey"`
}

// Envelope is a DSSE envelope with its base64 fields decoded.
type Envelope struct {
	Payload     []byte
	PayloadType string
	Signatures  [][]byte
}

type rawEnvelope struct {
	Payload     string `json:"payload"`
	PayloadType string `json:"payloadType"`
	Signatures  []struct {
		Sig   string `json:"sig"`
		KeyID string `json:"keyid"`
	} `json:"signatures"`
}

// UnmarshalJSON decodes the envelope's base64 fields strictly.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	var r rawEnvelope
	if err := decodeLoose(b, MaxBundleSize, &r); err != nil {
		return err
	}
	p, err := DecodeBase64(r.Payload)
	if err != nil {
		return fmt.Errorf("dsseEnvelope.payload: %w", err)
	}
	if len(r.Signatures) == 0 || len(r.Signatures) > maxSubjects {
		return fmt.Errorf("%w: dsseEnvelope has %d signatures, want 1 to %d", ErrMalformed, len(r.Signatures), maxSubjects)
	}
	e.Payload, e.PayloadType = p, r.PayloadType
	for i, s := range r.Signatures {
		sig, err := DecodeBase64(s.Sig)
		if err != nil {
			return fmt.Errorf("dsseEnvelope.signatures[%d]: %w", i, err)
		}
		e.Signatures = append(e.Signatures, sig)
	}
	return nil
}

// ParseBundle parses an untrusted Sigstore bundle of media type
// BundleMediaType that carries a DSSE envelope.
func ParseBundle(b []byte) (*Bundle, error) {
	var bu Bundle
	if err := decodeLoose(b, MaxBundleSize, &bu); err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	if bu.MediaType != BundleMediaType {
		return nil, fmt.Errorf("sigstore bundle: %w: mediaType %q, want %q", ErrWrongType, bu.MediaType, BundleMediaType)
	}
	if bu.DSSEEnvelope == nil {
		if bu.MessageSignature != nil {
			return nil, fmt.Errorf("sigstore bundle: %w: a messageSignature signs a blob, not an image; sign the image with cosign sign", ErrWrongType)
		}
		return nil, fmt.Errorf("sigstore bundle: %w: no dsseEnvelope", ErrMalformed)
	}
	if bu.DSSEEnvelope.PayloadType != InTotoPayloadType {
		return nil, fmt.Errorf("sigstore bundle: %w: DSSE payloadType %q, want %q", ErrWrongType, bu.DSSEEnvelope.PayloadType, InTotoPayloadType)
	}
	return &bu, nil
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
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: corrupt base64", ErrMalformed)
}
