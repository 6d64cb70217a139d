package signature

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// Media types of Notary Project (notation) signatures: a referrer of
// artifact type NotationArtifactType whose one layer is a JWS or COSE
// envelope.
const (
	NotationArtifactType = "application/vnd.cncf.notary.signature"
	JWSMediaType         = "application/jose+json"
	COSEMediaType        = "application/cose"
)

// Media types, annotation keys and type strings of the cosign formats.
const (
	// SimpleSigningMediaType is the media type of a legacy cosign signature layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of a legacy layer's payload.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// BundleMediaType is the media type of a Sigstore bundle (v0.3) layer and
	// the artifact type of the referrer manifest cosign v3 attaches.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// CosignType is critical.type of a simple-signing payload.
	CosignType = "cosign container image signature"
	// CosignSignPredicateType is the in-toto predicate type cosign v3 signs
	// (and is accepted as critical.type too).
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// MaxPayloadSize bounds a simple-signing payload; cosign's are a few hundred bytes.
const MaxPayloadSize = 64 << 10

// ErrWrongType marks a well-formed document of a type we do not accept.
var ErrWrongType = errors.New("wrong type")

// Payload is the cosign / Red Hat "simple signing" payload: the statement
// "this digest is approved" that a signature covers.
type Payload struct {
	Critical Critical          `json:"critical"`
	Optional map[string]string `json:"optional"`
}

// Critical holds the fields a verifier must understand; unknown ones are refused.
type Critical struct {
	Identity Identity `json:"identity"`
	Image    Image    `json:"image"`
	Type     string   `json:"type"`
}

// Identity is the reference the signer claims for the image (informational).
type Identity struct {
	DockerReference string `json:"docker-reference"`
}

// Image binds the payload to one manifest or index digest.
type Image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// NewPayload returns the payload cosign writes for digest in repository ref
// (docker-reference is the repository, as cosign sets it), with optional
// annotations.
func NewPayload(digest, ref string, annotations map[string]string) (*Payload, error) {
	if err := ValidateDigest(digest); err != nil {
		return nil, err
	}
	return &Payload{
		Critical: Critical{
			Identity: Identity{DockerReference: ref},
			Image:    Image{DockerManifestDigest: digest},
			Type:     CosignType,
		},
		Optional: annotations,
	}, nil
}

// Marshal returns the payload bytes to sign.
func (p *Payload) Marshal() ([]byte, error) { return json.Marshal(p) }

// Digest returns the image digest the payload covers.
func (p *Payload) Digest() string { return p.Critical.Image.DockerManifestDigest }

// ParsePayload parses untrusted payload bytes strictly: at most
// MaxPayloadSize bytes, no duplicate keys, no unknown fields, a known
// critical.type and a well-formed sha256 digest. Optional values that are not
// strings (cosign allows any JSON) are kept in their JSON text form.
func ParsePayload(b []byte) (*Payload, error) {
	var raw struct {
		Critical Critical                   `json:"critical"`
		Optional map[string]json.RawMessage `json:"optional"`
	}
	if err := decodeStrict(b, MaxPayloadSize, &raw); err != nil {
		return nil, fmt.Errorf("simple-signing payload: %w", err)
	}
	switch raw.Critical.Type {
	case CosignType, CosignSignPredicateType:
	default:
		return nil, fmt.Errorf("simple-signing payload: %w: critical.type %q, want %q", ErrWrongType, raw.Critical.Type, CosignType)
	}
	if err := ValidateDigest(raw.Critical.Image.DockerManifestDigest); err != nil {
		return nil, fmt.Errorf("simple-signing payload: critical.image.docker-manifest-digest: %w", err)
	}
	p := &Payload{Critical: raw.Critical}
	if len(raw.Optional) > 0 {
		p.Optional = make(map[string]string, len(raw.Optional))
		for k, v := range raw.Optional {
			var s string
			if json.Unmarshal(v, &s) == nil {
				p.Optional[k] = s
			} else {
				p.Optional[k] = string(v)
			}
		}
	}
	return p, nil
}

// ValidateDigest accepts only sha256:<64 lowercase hex> and
// sha512:<128 lowercase hex> (the shared check of internal/registry/check),
// and wraps ErrMalformed otherwise.
func ValidateDigest(d string) error {
	if err := check.Digest(d); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// SignatureTag is the cosign legacy signature tag of digest: sha256-<hex>.sig.
func SignatureTag(digest string) string { return FallbackTag(digest) + ".sig" }

// FallbackTag is the OCI referrers tag-schema fallback of digest:
// sha256-<hex>, an index that lists the referrers where the registry has no
// referrers API.
func FallbackTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }
