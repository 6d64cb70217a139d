package signature

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Limits on signature manifests. They bound the work an attacker who can
// push to a repository can make a node do; real cosign manifests hold one
// layer per signer.
const (
	// MaxManifestSize bounds a signature manifest or referrers index.
	MaxManifestSize = 1 << 20
	// MaxLayers bounds the layers (signatures) read from one manifest.
	MaxLayers = 256
	// MaxReferrers bounds the referrers read for one digest.
	MaxReferrers = 256
	// MaxBundleSize bounds a Sigstore bundle layer.
	MaxBundleSize = 256 << 10
)

// ErrTooMany marks a manifest or index over MaxLayers or MaxReferrers.
var ErrTooMany = errors.New("too many entries")

// Descriptor is the part of an OCI descriptor read here.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// OCIManifest is the part of an OCI image manifest read here.
type OCIManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	ArtifactType  string       `json:"artifactType,omitempty"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
	Subject       *Descriptor  `json:"subject,omitempty"`
	// Annotations: notation records its signing certificate's thumbprints
	// here. Untrusted, like all of the manifest.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// OCIIndex is the part of an OCI image index read here.
type OCIIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// ParseManifest parses an untrusted signature manifest: at most
// MaxManifestSize bytes and MaxLayers layers, every layer with a valid
// sha256 digest and a non-negative size.
func ParseManifest(b []byte) (*OCIManifest, error) {
	var m OCIManifest
	if err := decodeLoose(b, MaxManifestSize, &m); err != nil {
		return nil, fmt.Errorf("signature manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("signature manifest: %w: schemaVersion %d, want 2", ErrMalformed, m.SchemaVersion)
	}
	if len(m.Layers) > MaxLayers {
		return nil, fmt.Errorf("signature manifest: %w: %d layers, at most %d are read; remove stale signatures from the tag", ErrTooMany, len(m.Layers), MaxLayers)
	}
	for i, l := range m.Layers {
		if err := ValidateDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("signature manifest: layer %d: %w", i, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("signature manifest: layer %d: %w: negative size", i, ErrMalformed)
		}
	}
	return &m, nil
}

// ParseIndex parses an untrusted referrers index (the referrers API answer
// or the sha256-<hex> fallback tag): at most MaxManifestSize bytes and
// MaxReferrers entries.
func ParseIndex(b []byte) (*OCIIndex, error) {
	var x OCIIndex
	if err := decodeLoose(b, MaxManifestSize, &x); err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	if x.SchemaVersion != 2 {
		return nil, fmt.Errorf("referrers index: %w: schemaVersion %d, want 2", ErrMalformed, x.SchemaVersion)
	}
	if len(x.Manifests) > MaxReferrers {
		return nil, fmt.Errorf("referrers index: %w: %d referrers, at most %d are read", ErrTooMany, len(x.Manifests), MaxReferrers)
	}
	for i, d := range x.Manifests {
		if err := ValidateDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("referrers index: entry %d: %w", i, err)
		}
	}
	return &x, nil
}

// Manifest is one signature manifest as discovered (legacy .sig manifest or
// a referrer carrying a bundle), with the layer blobs discovery fetched. All
// of it is untrusted; pkg/verify parses and judges it.
type Manifest struct {
	// Source says where it was found, for reports (e.g. "reg/app:sha256-….sig").
	Source string
	// Raw is the manifest JSON.
	Raw []byte
	// Blobs maps layer digests to their content. Layers over the size caps or
	// that failed to download are absent and reported as such.
	Blobs map[string][]byte
	// Err, when set, is why discovery did not read the manifest (e.g. it is
	// over MaxManifestSize); Verify reports it as this manifest's failure.
	Err error
}

// DigestOf returns the sha256 digest string of b.
func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// MaxBlobSize returns the largest blob read for a layer of media type mt.
// Envelopes that carry certificates (Sigstore bundles, notation JWS and
// COSE) share MaxBundleSize.
func MaxBlobSize(mt string) int64 {
	switch mt {
	case BundleMediaType, JWSMediaType, COSEMediaType:
		return MaxBundleSize
	}
	return MaxPayloadSize
}

// IsSignatureLayer reports whether a layer of media type mt is a signature
// of one of the formats read: cosign simple signing, Sigstore bundle, or a
// notation envelope. Other layers (SBOMs, attestations' other types) are
// not signatures and are skipped.
func IsSignatureLayer(mt string) bool {
	switch mt {
	case SimpleSigningMediaType, BundleMediaType, JWSMediaType, COSEMediaType:
		return true
	}
	return false
}
