package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// ErrUnavailable marks an operational failure to reach the signature store
// (registry down, refused, auth failure). It is never a verdict.
var ErrUnavailable = errors.New("signature store unavailable")

// Registry discovers the signatures of an image digest in its OCI registry
// repository: the cosign tag sha256-<hex>.sig and the OCI 1.1 referrers
// carrying Sigstore bundles (through the referrers API, or the sha256-<hex>
// tag index where the registry lacks it).
type Registry struct {
	opts registry.Options
}

// RegistryOption configures a Registry.
type RegistryOption func(*registry.Options)

// WithInsecure allows plain HTTP and unverified TLS to every registry. The
// default is false: HTTP is used only for loopback registries.
func WithInsecure(insecure bool) RegistryOption {
	return func(o *registry.Options) { o.Insecure = insecure }
}

// WithInsecureHosts allows plain HTTP to these registries (host[:port]) only.
func WithInsecureHosts(hosts ...string) RegistryOption {
	return func(o *registry.Options) { o.InsecureHosts = append(o.InsecureHosts, hosts...) }
}

// WithKeychain sets the credentials source. The default is the docker config
// files (authn.DefaultKeychain).
func WithKeychain(kc authn.Keychain) RegistryOption {
	return func(o *registry.Options) { o.Keychain = kc }
}

// WithTransport sets the base HTTP transport. The default is a clone of
// remote.DefaultTransport.
func WithTransport(rt http.RoundTripper) RegistryOption {
	return func(o *registry.Options) { o.Transport = rt }
}

// NewRegistry returns a Registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{}
	for _, o := range opts {
		o(&r.opts)
	}
	return r
}

// ParseReference parses an image reference with the registry's name options.
func (r *Registry) ParseReference(s string) (name.Reference, error) {
	return r.opts.ParseReference(s)
}

func (r *Registry) remote(ctx context.Context) []remote.Option {
	return append(r.opts.RemoteOptions(), remote.WithContext(ctx))
}

// Resolve returns the digest ref names now (a tag is resolved once) and its
// descriptor, whose Manifest holds the manifest or index bytes.
func (r *Registry) Resolve(ctx context.Context, ref name.Reference) (name.Digest, *remote.Descriptor, error) {
	desc, err := remote.Get(ref, r.remote(ctx)...)
	if err != nil {
		return name.Digest{}, nil, unavailable(ref.String(), err)
	}
	return ref.Context().Digest(desc.Digest.String()), desc, nil
}

// Fetch returns the signature manifests of image found in its repository,
// each with the blobs of the layers that are signatures. It returns an error
// wrapping ErrUnavailable when the registry cannot be read; an image without
// signatures is not an error (no manifests).
func (r *Registry) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	if err := signature.ValidateDigest(image.DigestStr()); err != nil {
		return nil, err
	}
	opts := r.remote(ctx)
	var out []signature.Manifest

	tag := image.Context().Tag(signature.SignatureTag(image.DigestStr()))
	m, err := r.fetchManifest(tag, opts)
	switch {
	case isNotFound(err):
	case err != nil:
		return nil, err
	default:
		out = append(out, m)
	}

	idx, err := remote.Referrers(image, opts...)
	if err != nil {
		return nil, unavailable("referrers of "+image.String(), err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, unavailable("referrers of "+image.String(), err)
	}
	x, err := signature.ParseIndex(raw)
	if err != nil {
		// Reported as a failure of this source so the verdict says why.
		out = append(out, signature.Manifest{Source: "referrers of " + image.String(), Err: err})
		return out, nil
	}
	for _, d := range x.Manifests {
		// Some registries (go-containerregistry's among them) report the
		// config media type, the OCI empty type, instead of the manifest's
		// artifactType; such referrers are read and their layers filtered.
		switch d.ArtifactType {
		case signature.BundleMediaType, "", "application/vnd.oci.empty.v1+json":
		default:
			continue
		}
		m, err := r.fetchManifest(image.Context().Digest(d.Digest), opts)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// fetchManifest reads one signature manifest and the blobs of its signature
// layers, within the size caps of package signature.
func (r *Registry) fetchManifest(ref name.Reference, opts []remote.Option) (signature.Manifest, error) {
	sm := signature.Manifest{Source: ref.String(), Blobs: map[string][]byte{}}
	if d, err := remote.Head(ref, opts...); err == nil && d.Size > signature.MaxManifestSize {
		// Do not download what ParseManifest would refuse.
		sm.Err = fmt.Errorf("signature manifest: %w: %d bytes, more than the %d read", signature.ErrMalformed, d.Size, signature.MaxManifestSize)
		return sm, nil
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return sm, unavailable(ref.String(), err)
	}
	sm.Raw = desc.Manifest
	m, err := signature.ParseManifest(desc.Manifest)
	if err != nil {
		return sm, nil // Verify reports it.
	}
	for _, l := range m.Layers {
		if l.MediaType != signature.SimpleSigningMediaType && l.MediaType != signature.BundleMediaType {
			continue
		}
		max := signature.MaxBlobSize(l.MediaType)
		if l.Size > max {
			continue // reported as a missing blob
		}
		b, err := readBlob(ref.Context().Digest(l.Digest), max, opts)
		if err != nil {
			return sm, err
		}
		sm.Blobs[l.Digest] = b
	}
	return sm, nil
}

func readBlob(d name.Digest, max int64, opts []remote.Option) ([]byte, error) {
	layer, err := remote.Layer(d, opts...)
	if err != nil {
		return nil, unavailable(d.String(), err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, unavailable(d.String(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, unavailable(d.String(), err)
	}
	return b, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func unavailable(what string, err error) error {
	if isNotFound(err) {
		return err
	}
	return fmt.Errorf("%w: reading %s: %w; check that the registry is reachable and the credentials in the docker config", ErrUnavailable, what, err)
}
