// Package bundleoci ships policy bundles as OCI artifacts: push, pull and
// the HEAD-then-pull poll the node's bundle store uses, every answer bounded
// as it is read, through the shared registry client (internal/registry).
// The bundle model is package policy's; this package only moves bytes.
package bundleoci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Media types of a bundle pushed as an OCI artifact: an OCI image manifest
// whose config has BundleConfigMediaType (the artifact type, as OCI 1.0
// registries understand it), one layer with the bundle's exact bytes and, when
// signed, one with its detached signature.
const (
	BundleConfigMediaType    types.MediaType = "application/vnd.nri-csig.bundle.config.v1+json"
	BundleMediaType          types.MediaType = "application/vnd.nri-csig.bundle.v1+yaml"
	BundleSignatureMediaType types.MediaType = "application/vnd.nri-csig.bundle.signature.v1+json"
	// AnnotationSerial carries the bundle's serial on the manifest, for people
	// browsing the registry.
	AnnotationSerial = "io.nri-csig.bundle.serial"
)

// RegistryOption configures PushBundle, PullBundle and Client.
type RegistryOption func(*registryOptions)

type registryOptions struct {
	client *registry.Client
	reg    registry.Options
}

// WithRegistryClient makes the registry calls go through c, the process's
// shared registry client (its transport, timeouts and handshakes); the other
// RegistryOptions are then c's and are ignored. The default is a client of
// its own, built from them.
func WithRegistryClient(c *registry.Client) RegistryOption {
	return func(o *registryOptions) { o.client = c }
}

// Client returns the registry client opts describe (for a bundle store's
// OCI source).
func Client(opts ...RegistryOption) *registry.Client { return registryClient(opts) }

func registryClient(opts []RegistryOption) *registry.Client {
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.client != nil {
		return o.client
	}
	return registry.New(o.reg)
}

// ParseRef parses a bundle reference (a tag or a digest).
func ParseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("bundle reference %q: %w; use registry/repository:tag or registry/repository@sha256:<hex>", ref, err)
	}
	return r, nil
}

// maxBundleManifest bounds the manifest of a bundle artifact (two layers).
const maxBundleManifest = 64 << 10

// bundleManifestTypes are the manifest types a bundle artifact may have.
var bundleManifestTypes = []types.MediaType{types.OCIManifestSchema1, types.DockerManifestSchema2}

// PushBundle pushes the bundle bytes (and the signature document, when sig is
// non-empty) to ref as an OCI artifact and returns the manifest digest. It
// checks the bundle first: a registry is no place for an invalid one.
func PushBundle(ctx context.Context, ref string, data, sig []byte, opts ...RegistryOption) (string, error) {
	b, err := policy.ParseBundle(ref, data)
	if err != nil {
		return "", fmt.Errorf("refusing to push an invalid bundle: %w", err)
	}
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	repo, err := registryClient(opts).Repo(ctx, r.Context(), true)
	if err != nil {
		return "", fmt.Errorf("push bundle to %s: %w", ref, err)
	}
	adds := []mutate.Addendum{{Layer: static.NewLayer(data, BundleMediaType),
		Annotations: map[string]string{"org.opencontainers.image.title": "csig-bundle.yaml"}}}
	if len(sig) > 0 {
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(sig, BundleSignatureMediaType),
			Annotations: map[string]string{"org.opencontainers.image.title": "csig-bundle.yaml" + policy.SignatureSuffix}})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return "", fmt.Errorf("push bundle: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, BundleConfigMediaType)
	img = mutate.Annotations(img, map[string]string{AnnotationSerial: strconv.FormatUint(b.Serial, 10)}).(v1.Image)
	if err := remote.Write(r, img, repo.RemoteOptions(ctx)...); err != nil {
		return "", fmt.Errorf("push bundle to %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push bundle: %w", err)
	}
	return d.String(), nil
}

// PullBundle fetches the bundle bytes, the signature document (nil when the
// artifact has none) and the manifest digest from ref. It does not parse or
// verify them: see policy.ParseBundle and VerifyBundle.
func PullBundle(ctx context.Context, ref string, opts ...RegistryOption) (data, sig []byte, digest string, err error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, nil, "", err
	}
	repo, err := registryClient(opts).Repo(ctx, r.Context(), false)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
	}
	return pull(ctx, repo, r.String(), r.Identifier())
}

// pull reads the artifact identifier names in repo, each answer within its
// bound as it is read.
func pull(ctx context.Context, repo *registry.Repo, r, identifier string) (data, sig []byte, digest string, err error) {
	raw, err := repo.Manifest(ctx, identifier, bundleManifestTypes, maxBundleManifest)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw.Raw))
	if err != nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
	}
	if m.Config.MediaType != BundleConfigMediaType {
		return nil, nil, "", fmt.Errorf("%s is not an nri-csig policy bundle (config media type %q, want %q); push one with 'nri-csig bundle push'",
			r, m.Config.MediaType, BundleConfigMediaType)
	}
	for _, l := range m.Layers {
		var limit int64
		var dst *[]byte
		switch l.MediaType {
		case BundleMediaType:
			limit, dst = policy.MaxBundleSize, &data
		case BundleSignatureMediaType:
			limit, dst = policy.MaxSignatureSize, &sig
		default:
			continue // room for later additions
		}
		if *dst != nil {
			return nil, nil, "", fmt.Errorf("pull bundle %s: two layers of type %s; push the bundle again", r, l.MediaType)
		}
		if l.Size > limit {
			return nil, nil, "", fmt.Errorf("pull bundle %s: layer %s is %w: %d bytes, more than the %d allowed", r, l.MediaType, policy.ErrTooLarge, l.Size, limit)
		}
		b, err := repo.Blob(ctx, l.Digest.String(), limit)
		if err != nil {
			return nil, nil, "", fmt.Errorf("pull bundle %s: layer %s: %w", r, l.MediaType, err)
		}
		if b == nil {
			b = []byte{}
		}
		*dst = b
	}
	if data == nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: the artifact has no %s layer; push the bundle again", r, BundleMediaType)
	}
	return data, sig, raw.Digest, nil
}

// Poll reads the bundle ref names unless it is still last: a HEAD of the
// reference (nothing is read when the digest is unchanged), then the artifact
// by digest, so that what is returned is what HEAD reported. changed is false
// when the digest is last. Every exchange is bounded by c's timeouts on top
// of ctx.
func Poll(ctx context.Context, c *registry.Client, ref name.Reference, last string) (data, sig []byte, digest string, changed bool, err error) {
	repo, err := c.Repo(ctx, ref.Context(), false)
	if err != nil {
		return nil, nil, "", false, fmt.Errorf("bundle source %s: %w", ref, err)
	}
	d, err := repo.Head(ctx, ref.Identifier(), bundleManifestTypes)
	if errors.Is(err, registry.ErrNoDigest) {
		d, err = ref.Identifier(), nil // read it to know
	}
	if err != nil {
		return nil, nil, "", false, fmt.Errorf("bundle source %s: %w", ref, err)
	}
	if d == last {
		return nil, nil, "", false, nil
	}
	data, sig, digest, err = pull(ctx, repo, ref.String(), d)
	if err != nil {
		return nil, nil, "", false, err
	}
	return data, sig, digest, digest != last, nil
}
