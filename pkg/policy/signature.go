package policy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// SignatureSuffix is appended to a bundle file name to name its detached
// signature: csig-bundle.yaml is signed by csig-bundle.yaml.sig.
const SignatureSuffix = ".sig"

// KindBundleSignature is the kind of a detached bundle signature document.
const KindBundleSignature = "BundleSignature"

// MaxSignatureSize bounds a signature document; real ones are under 1 KiB.
const MaxSignatureSize = 64 << 10

// Errors from VerifyBundle, tested with errors.Is.
var (
	// ErrUnsigned: a signature is required and there is none.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrBadSignature: the signature is malformed, by another key, for other
	// content, or does not verify.
	ErrBadSignature = errors.New("bundle signature is not valid")
)

// BundleSignature is the detached signature of a bundle: the signed bytes
// are the bundle file's exact bytes (what Marshal wrote, when the CLI wrote
// it), so a node verifies what it fetched without re-encoding anything.
type BundleSignature struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Algorithm  Algorithm `json:"algorithm"`
	// KeyFingerprint names the signing key, for messages; trust comes only
	// from verifying Signature with the key the node is configured with.
	KeyFingerprint string `json:"keyFingerprint"`
	// BundleDigest is "sha256:<hex>" of the bundle bytes.
	BundleDigest string `json:"bundleDigest"`
	// Signature is the base64 raw signature over the SHA-256 of the bundle bytes.
	Signature string `json:"signature"`
}

// BundleDigest returns "sha256:<hex>" of bundle bytes.
func BundleDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SignBundle signs the exact bundle bytes with s and returns the signature
// document to store beside the bundle. It does not parse the bundle: check it
// with ParseBundle first.
func SignBundle(ctx context.Context, data []byte, s keys.Signer) ([]byte, error) {
	pub, err := s.PublicKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	sum := sha256.Sum256(data)
	raw, err := s.SignDigest(ctx, sum[:])
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	alg := s.Info().Algorithm
	// Check our own work: a signature nodes would refuse must not be written.
	if err := keys.VerifyDigest(pub, alg, sum[:], raw); err != nil {
		return nil, fmt.Errorf("sign bundle: the key produced a signature that does not verify: %w", err)
	}
	doc := BundleSignature{APIVersion: APIVersion, Kind: KindBundleSignature, Algorithm: alg,
		KeyFingerprint: fp, BundleDigest: "sha256:" + hex.EncodeToString(sum[:]),
		Signature: base64.StdEncoding.EncodeToString(raw)}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	return append(out, '\n'), nil
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// VerifyBundle checks that sig is a valid signature of the bundle bytes data
// by pub. A nil or empty sig yields ErrUnsigned; any other failure wraps
// ErrBadSignature and says what to do.
func VerifyBundle(data, sig []byte, pub crypto.PublicKey) (*BundleSignature, error) {
	if len(bytes.TrimSpace(sig)) == 0 {
		return nil, ErrUnsigned
	}
	if len(sig) > MaxSignatureSize {
		return nil, fmt.Errorf("%w: signature document is %d bytes; it should be under 1 KiB", ErrBadSignature, len(sig))
	}
	// json would decode null, or an object followed by anything, into a
	// document with empty fields and say nothing useful about it.
	if trimmed := bytes.TrimSpace(sig); trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: the signature document is not a JSON object (it starts with %q); re-create it with 'nri-csig bundle sign'",
			ErrBadSignature, firstBytes(trimmed, 16))
	}
	var doc BundleSignature
	dec := json.NewDecoder(bytes.NewReader(sig))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: cannot read the signature document: %v; re-create it with 'nri-csig bundle sign'", ErrBadSignature, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: the signature document has data after its JSON object; re-create it with 'nri-csig bundle sign'", ErrBadSignature)
	}
	if doc.APIVersion != APIVersion || doc.Kind != KindBundleSignature {
		return nil, fmt.Errorf("%w: signature document is %s %s, want %s %s", ErrBadSignature, doc.APIVersion, doc.Kind, APIVersion, KindBundleSignature)
	}
	want, err := keys.Fingerprint(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if doc.KeyFingerprint != want {
		return nil, fmt.Errorf("%w: signed by key %s, but the trusted bundle-signing key is %s; sign with that key or configure the right one",
			ErrBadSignature, doc.KeyFingerprint, want)
	}
	digest := BundleDigest(data)
	if doc.BundleDigest != digest {
		return nil, fmt.Errorf("%w: the signature is for bundle content %s, but the bundle is %s (edited after signing?); sign it again",
			ErrBadSignature, doc.BundleDigest, digest)
	}
	raw, err := base64.StdEncoding.DecodeString(doc.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	sum := sha256.Sum256(data)
	if err := keys.VerifyDigest(pub, doc.Algorithm, sum[:], raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return &doc, nil
}
