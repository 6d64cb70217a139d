package keyless

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// legacyBundleMediaType is the bundle version a legacy keyless layer is
// read as: v0.1, whose Rekor entries need only a signed entry timestamp
// (cosign v2 stored no inclusion proof in the annotation).
const legacyBundleMediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1"

// rekorBundle is the dev.sigstore.cosign/bundle annotation.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           []byte `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// verifyLegacy judges a keyless cosign v2 signature: a simple-signing
// payload, the signature over its SHA-256 and the certificate, Rekor entry
// and timestamp in the layer's annotations. They are read into a v0.1
// message-signature bundle and verified like a bundle.
func (v *Verifier) verifyLegacy(digest string, payload []byte, ann map[string]string) error {
	p, err := signature.ParsePayload(payload)
	if err != nil {
		return err
	}
	if p.Digest() != digest {
		return fmt.Errorf("%w: payload names %s", verify.ErrDigestMismatch, p.Digest())
	}
	sig, err := signature.DecodeBase64(ann[signature.SignatureAnnotation])
	if err != nil {
		return fmt.Errorf("%s annotation: %w", signature.SignatureAnnotation, err)
	}
	block, _ := pem.Decode([]byte(ann[signature.CertificateAnnotation]))
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: %s annotation is not a PEM certificate", signature.ErrMalformed, signature.CertificateAnnotation)
	}
	sum := sha256.Sum256(payload)
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{
			Certificates: []*protocommon.X509Certificate{{RawBytes: block.Bytes}}}},
	}
	if raw, ok := ann[signature.RekorBundleAnnotation]; ok {
		tle, err := legacyTlogEntry(raw)
		if err != nil {
			return err
		}
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	if raw, ok := ann[signature.RFC3161Annotation]; ok {
		var ts struct {
			SignedRFC3161TimestampResponse []byte `json:"SignedRFC3161TimestampResponse"`
		}
		if err := json.Unmarshal([]byte(raw), &ts); err != nil || len(ts.SignedRFC3161TimestampResponse) == 0 {
			return fmt.Errorf("%w: %s annotation is not a timestamp", signature.ErrMalformed, signature.RFC3161Annotation)
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts.SignedRFC3161TimestampResponse}}}
	}
	b, err := bundle.NewBundle(&protobundle.Bundle{
		MediaType:            legacyBundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signature:     sig,
		}},
	})
	if err != nil {
		return fmt.Errorf("legacy keyless signature: %w: %v", signature.ErrMalformed, err)
	}
	_, err = v.verify(b, "sha256", sum[:])
	return err
}

// legacyTlogEntry reads the Rekor entry of a dev.sigstore.cosign/bundle
// annotation; its kind and version are the entry body's.
func legacyTlogEntry(raw string) (*protorekor.TransparencyLogEntry, error) {
	var rb rekorBundle
	if err := json.Unmarshal([]byte(raw), &rb); err != nil {
		return nil, fmt.Errorf("%w: %s annotation: %v", signature.ErrMalformed, signature.RekorBundleAnnotation, err)
	}
	var body struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || json.Unmarshal(rb.Payload.Body, &body) != nil || body.Kind == "" || len(rb.SignedEntryTimestamp) == 0 {
		return nil, fmt.Errorf("%w: %s annotation lacks a Rekor entry (body, logID, signed entry timestamp)", signature.ErrMalformed, signature.RekorBundleAnnotation)
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &protorekor.KindVersion{Kind: body.Kind, Version: body.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: rb.Payload.Body,
	}, nil
}
