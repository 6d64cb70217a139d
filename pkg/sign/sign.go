// Package sign signs image digests and attaches the signatures in the cosign
// legacy format: a simple-signing payload, signed as SHA-256 digest by a
// key, stored as one layer of the tag sha256-<hex>.sig in the image's
// repository, next to the signatures already there.
package sign

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// Signer is the part of keys.Signer signing needs.
type Signer interface {
	// SignDigest signs a SHA-256 digest and returns the raw signature.
	SignDigest(ctx context.Context, digest []byte) ([]byte, error)
}

// Signature is one signature made by Payload.
type Signature struct {
	Image     name.Digest
	Payload   []byte
	Signature []byte
}

// Digest signs image digest with s: the cosign simple-signing payload for
// image, and its signature (attach it with Attach).
func Digest(ctx context.Context, s Signer, image name.Digest, annotations map[string]string) (*Signature, error) {
	p, err := signature.NewPayload(image.DigestStr(), image.Context().Name(), annotations)
	if err != nil {
		return nil, err
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	sig, err := s.SignDigest(ctx, sum[:])
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", image.DigestStr(), err)
	}
	return &Signature{Image: image, Payload: b, Signature: sig}, nil
}

// Attach appends sig as a new layer of the image's sha256-<hex>.sig tag,
// keeping every signature already there. Attaching the same signature twice
// is a no-op. Two signers attaching at the same moment can race (the tag is
// read, extended and rewritten); signing again repairs a lost signature.
func Attach(ctx context.Context, sig *Signature, opts ...remote.Option) error {
	return AttachTo(ctx, sig, sig.Image.Context(), opts...)
}

// AttachTo is Attach into the tag sha256-<hex>.sig of repo instead of the
// image's repository: where "cosign sign" puts it with COSIGN_REPOSITORY=repo.
// The payload still names the image's own repository, as cosign's does.
func AttachTo(ctx context.Context, sig *Signature, repo name.Repository, opts ...remote.Option) error {
	opts = append(opts, remote.WithContext(ctx))
	tag := SignatureTag(sig, repo)
	b64 := base64.StdEncoding.EncodeToString(sig.Signature)

	base, err := remote.Image(tag, opts...)
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		base = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	case err != nil:
		return fmt.Errorf("reading existing signatures %s: %w", tag, err)
	default:
		m, err := base.Manifest()
		if err != nil {
			return fmt.Errorf("reading existing signatures %s: %w", tag, err)
		}
		if len(m.Layers) >= signature.MaxLayers {
			return fmt.Errorf("%s already holds %d signatures, the most a verifier reads; remove stale ones first", tag, len(m.Layers))
		}
		payloadDigest := signature.DigestOf(sig.Payload)
		for _, l := range m.Layers {
			if l.Digest.String() == payloadDigest && l.Annotations[signature.SignatureAnnotation] == b64 {
				return nil
			}
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(sig.Payload, signature.SimpleSigningMediaType),
		Annotations: map[string]string{signature.SignatureAnnotation: b64},
		MediaType:   signature.SimpleSigningMediaType,
	})
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return fmt.Errorf("writing signatures %s: %w", tag, err)
	}
	return nil
}

// SignatureTag is the tag AttachTo(ctx, sig, repo) writes.
func SignatureTag(sig *Signature, repo name.Repository) name.Tag {
	return repo.Tag(signature.SignatureTag(sig.Image.DigestStr()))
}
