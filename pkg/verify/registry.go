package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// ErrUnavailable marks an operational failure to reach the signature store
// (registry down, refused, auth failure). It is never a verdict.
var ErrUnavailable = errors.New("signature store unavailable")

// Bounds on one discovery (one image digest in one repository), beyond the
// per-document caps of package signature: what anyone with push rights to
// the repository can make a node download for one image.
const (
	// MaxDiscoveryBlobBytes bounds the signature layers read in all.
	MaxDiscoveryBlobBytes = 4 << 20
	// MaxDiscoveryBlobs bounds the signature layers downloaded (layers with
	// the same digest are downloaded once).
	MaxDiscoveryBlobs = 512
)

// Registry discovers the signatures of an image digest in its OCI registry
// repository: the cosign tag sha256-<hex>.sig and the OCI 1.1 referrers
// carrying Sigstore bundles (through the referrers API, or the sha256-<hex>
// tag index where the registry lacks it).
//
// Discovery is partial rather than all-or-nothing: every signature manifest
// read is returned even when another part (the referrers API, one referrer,
// one layer) failed. Such failures are reported to the partial hook (see
// WithPartialHook); Fetch returns an error only when nothing could be read.
type Registry struct {
	client    *registry.Client
	onPartial func(image name.Digest, err error)
}

// RegistryOption configures a Registry.
type RegistryOption func(*registryOptions)

type registryOptions struct {
	client    *registry.Client
	reg       registry.Options
	onPartial func(name.Digest, error)
}

// WithClient makes the Registry use c, the process's shared registry client
// (one transport, one handshake per repository). The other connection
// options are then c's and are ignored here. The default is a client of its
// own, built from those options.
func WithClient(c *registry.Client) RegistryOption {
	return func(o *registryOptions) { o.client = c }
}

// WithInsecureHosts allows plain HTTP to these registries (host[:port]) only.
// The default: plain HTTP only to loopback registries.
func WithInsecureHosts(hosts ...string) RegistryOption {
	return func(o *registryOptions) { o.reg.HTTPHosts = append(o.reg.HTTPHosts, hosts...) }
}

// WithPartialHook calls f after a discovery that returned signatures but
// could not read everything (the referrers API failed, a referrer or a layer
// could not be read, an answer was over its bound), with what failed. The
// daemon logs and counts them. The default does nothing.
func WithPartialHook(f func(image name.Digest, err error)) RegistryOption {
	return func(o *registryOptions) { o.onPartial = f }
}

// NewRegistry returns a Registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = registry.New(o.reg)
	}
	return &Registry{client: o.client, onPartial: o.onPartial}
}

// Resolve returns the digest ref names now (a tag is resolved once) and the
// manifest or index it names, read within registry.MaxManifestSize.
func (r *Registry) Resolve(ctx context.Context, ref name.Reference) (name.Digest, *registry.Manifest, error) {
	repo, err := r.client.Repo(ctx, ref.Context(), false)
	if err != nil {
		return name.Digest{}, nil, unavailable(ref.String(), err)
	}
	m, err := repo.Manifest(ctx, ref.Identifier(), registry.ImageMediaTypes, registry.MaxManifestSize)
	if err != nil {
		return name.Digest{}, nil, unavailable(ref.String(), err)
	}
	return ref.Context().Digest(m.Digest), m, nil
}

// Fetch returns the signature manifests of image found in its repository,
// each with the blobs of the layers that are signatures. An image without
// signatures is not an error (no manifests). Fetch returns an error wrapping
// ErrUnavailable only when the registry could not be read at all; when one
// part fails, what was read is returned and the failure goes to the partial
// hook.
// NoRepositoryHost is the registry of the references the store makes for a
// digest whose repository is unknown (only repository-less sources, such as
// a signature directory, can answer for it; the registry source does not try).
const NoRepositoryHost = "local.invalid"

func (r *Registry) Fetch(ctx context.Context, image name.Digest) ([]signature.Manifest, error) {
	digest := image.DigestStr()
	if err := signature.ValidateDigest(digest); err != nil {
		return nil, err
	}
	if image.Context().RegistryStr() == NoRepositoryHost {
		// An image the node knows by ID only (no repository): there is no
		// registry to ask, and asking would be a DNS look-up of a name that
		// never resolves.
		return nil, nil
	}
	repo, err := r.client.Repo(ctx, image.Context(), false)
	if err != nil {
		return nil, unavailable(image.Context().String(), err)
	}
	d := &discovery{repo: repo, blobs: map[string][]byte{}}

	tag := image.Context().Tag(signature.SignatureTag(digest))
	if m, ok := d.manifest(ctx, tag.String(), tag.TagStr()); ok {
		d.out = append(d.out, m)
	}
	d.referrers(ctx, image)

	switch {
	case d.read == 0 && len(d.down) > 0:
		return nil, unavailable(image.String(), errors.Join(d.down...))
	case len(d.down)+len(d.bad) > 0 && r.onPartial != nil:
		r.onPartial(image, errors.Join(append(d.down, d.bad...)...))
	}
	return d.out, nil
}

// discovery is one Fetch in progress.
type discovery struct {
	repo  *registry.Repo
	out   []signature.Manifest
	read  int     // manifests read whole (every wanted layer fetched or absent)
	down  []error // operational failures: the registry did not answer
	bad   []error // what the registry served was refused (reported in out too)
	blobs map[string][]byte
	bytes int64 // blob bytes read
	gets  int   // blobs downloaded
}

// referrers reads the referrers of image that may carry Sigstore bundles or
// notation signatures.
func (d *discovery) referrers(ctx context.Context, image name.Digest) {
	src := "referrers of " + image.String()
	raw, err := d.repo.Referrers(ctx, image.DigestStr(), signature.MaxManifestSize)
	if err != nil {
		d.fail(src, err)
		return
	}
	x, err := signature.ParseIndex(raw)
	if err != nil {
		d.fail(src, err)
		return
	}
	for _, desc := range x.Manifests {
		// Some registries (go-containerregistry's among them) report the
		// config media type, the OCI empty type, instead of the manifest's
		// artifactType; such referrers are read and their layers filtered.
		switch desc.ArtifactType {
		case signature.BundleMediaType, signature.NotationArtifactType, "", "application/vnd.oci.empty.v1+json":
		default:
			continue
		}
		ref := image.Context().Digest(desc.Digest)
		if m, ok := d.manifest(ctx, ref.String(), desc.Digest); ok {
			d.out = append(d.out, m)
		}
	}
}

// manifest reads one signature manifest and the blobs of its signature
// layers, within the caps of package signature. ok is false when there is
// nothing to return: the manifest does not exist or could not be reached.
func (d *discovery) manifest(ctx context.Context, src, identifier string) (signature.Manifest, bool) {
	sm := signature.Manifest{Source: src, Blobs: map[string][]byte{}}
	m, err := d.repo.Manifest(ctx, identifier, nil, signature.MaxManifestSize)
	switch {
	case registry.IsNotFound(err):
		return sm, false
	case err != nil:
		d.fail(src, err)
		return sm, false
	}
	sm.Raw = m.Raw
	pm, err := signature.ParseManifest(m.Raw)
	if err != nil {
		d.read++
		d.bad = append(d.bad, fmt.Errorf("%s: %w", src, err))
		return sm, true // Verify reports it.
	}
	whole := true
	for _, l := range pm.Layers {
		if !signature.IsSignatureLayer(l.MediaType) {
			continue
		}
		max := signature.MaxBlobSize(l.MediaType)
		if l.Size > max {
			continue // Verify reports the declared size.
		}
		if b, ok := d.blobs[l.Digest]; ok {
			sm.Blobs[l.Digest] = b
			continue
		}
		if d.gets >= MaxDiscoveryBlobs || d.bytes+l.Size > MaxDiscoveryBlobBytes {
			d.bad = append(d.bad, fmt.Errorf("%s: layer %s not read: this image's signatures are over %d layers or %d bytes in all; remove stale signatures",
				src, l.Digest, MaxDiscoveryBlobs, MaxDiscoveryBlobBytes))
			continue
		}
		d.gets++
		b, err := d.repo.Blob(ctx, l.Digest, max)
		switch {
		case registry.IsNotFound(err) || err != nil && refused(err):
			// Verify reports the layer's payload as missing.
			d.bad = append(d.bad, fmt.Errorf("%s: layer %s: %w", src, l.Digest, err))
		case err != nil:
			d.fail(src+" layer "+l.Digest, err)
			whole = false
		default:
			d.bytes += int64(len(b))
			d.blobs[l.Digest] = b
			sm.Blobs[l.Digest] = b
		}
	}
	if whole {
		d.read++
	}
	return sm, true
}

// fail records a failed part: refused content is returned as a manifest
// whose Err says why; an unreachable part is only recorded.
func (d *discovery) fail(src string, err error) {
	if refused(err) {
		d.out = append(d.out, signature.Manifest{Source: src, Err: fmt.Errorf("%w: %w", signature.ErrMalformed, err)})
		d.bad = append(d.bad, fmt.Errorf("%s: %w", src, err))
		return
	}
	if !errors.Is(err, signature.ErrMalformed) && !errors.Is(err, signature.ErrTooMany) {
		d.down = append(d.down, fmt.Errorf("%s: %w", src, err))
		return
	}
	d.out = append(d.out, signature.Manifest{Source: src, Err: err})
	d.bad = append(d.bad, fmt.Errorf("%s: %w", src, err))
}

// refused reports whether err is about what the registry served rather than
// about reaching it.
func refused(err error) bool {
	return errors.Is(err, registry.ErrTooLarge) || errors.Is(err, registry.ErrWrongDigest)
}

func unavailable(what string, err error) error {
	if registry.IsNotFound(err) {
		return err
	}
	return fmt.Errorf("%w: reading %s: %w; check that the registry is reachable (the node config's registries.configPath gives the node's mirrors and CAs) and the node's credentials for it (registries.dockerConfig)", ErrUnavailable, what, err)
}
