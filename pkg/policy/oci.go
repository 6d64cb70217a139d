package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/internal/registry"
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

// RegistryOption configures PushBundle, PullBundle and WithOCISource.
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

// WithAllowHTTP allows plain HTTP to any registry. By default plain HTTP is
// used only for loopback registries (localhost, 127.0.0.0/8, ::1); any other
// registry must speak HTTPS, even those on private addresses, which
// go-containerregistry would otherwise reach over HTTP.
func WithAllowHTTP(allow bool) RegistryOption {
	return func(o *registryOptions) { o.reg.AllowHTTP = allow }
}

// WithInsecureRegistries allows plain HTTP to the named registries
// (host[:port], as in the node config's insecureRegistries), and only to them.
func WithInsecureRegistries(hosts ...string) RegistryOption {
	return func(o *registryOptions) { o.reg.HTTPHosts = append(o.reg.HTTPHosts, hosts...) }
}

// WithKeychain sets the registry credentials. The default is
// authn.DefaultKeychain (the Docker config of the user running the command).
func WithKeychain(k authn.Keychain) RegistryOption {
	return func(o *registryOptions) { o.reg.Keychain = k }
}

// WithTransport sets the base HTTP transport. The default is the registry
// client's own (with its connect and response timeouts).
func WithTransport(t http.RoundTripper) RegistryOption {
	return func(o *registryOptions) { o.reg.Transport = t }
}

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

func parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("bundle reference %q: %w; use registry/repository:tag or @sha256:...", ref, err)
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
	b, err := ParseBundle(ref, data)
	if err != nil {
		return "", fmt.Errorf("refusing to push an invalid bundle: %w", err)
	}
	r, err := parseRef(ref)
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
			Annotations: map[string]string{"org.opencontainers.image.title": "csig-bundle.yaml" + SignatureSuffix}})
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
// verify them: see ParseBundle and VerifyBundle.
func PullBundle(ctx context.Context, ref string, opts ...RegistryOption) (data, sig []byte, digest string, err error) {
	r, err := parseRef(ref)
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
			limit, dst = MaxBundleSize, &data
		case BundleSignatureMediaType:
			limit, dst = maxSignatureSize, &sig
		default:
			continue // room for later additions
		}
		if *dst != nil {
			return nil, nil, "", fmt.Errorf("pull bundle %s: two layers of type %s; push the bundle again", r, l.MediaType)
		}
		if l.Size > limit {
			return nil, nil, "", fmt.Errorf("pull bundle %s: layer %s is %w: %d bytes, more than the %d allowed", r, l.MediaType, ErrTooLarge, l.Size, limit)
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

// WithOCISource adds an OCI artifact source: the store polls ref (a tag, or
// a digest) at its interval, fetches the artifact when the manifest digest
// changed, and judges it like any other bundle.
func WithOCISource(ref string, opts ...RegistryOption) StoreOption {
	return func(so *storeOptions) error {
		r, err := parseRef(ref)
		if err != nil {
			return err
		}
		so.sources = append(so.sources, &ociSource{raw: ref, ref: r, client: registryClient(opts)})
		return nil
	}
}

type ociSource struct {
	raw    string // as configured, for reload events
	ref    name.Reference
	client *registry.Client // one for the source's life: one transport, one handshake
}

func (s *ociSource) String() string { return s.raw }

// fetch polls the source: a HEAD of the reference (nothing is read when the
// digest is unchanged), then the artifact by digest. Every exchange is
// bounded by the registry client's timeouts on top of ctx.
func (s *ociSource) fetch(ctx context.Context, last string) (*fetched, error) {
	repo, err := s.client.Repo(ctx, s.ref.Context(), false)
	if err != nil {
		return nil, fmt.Errorf("bundle source %s: %w", s.ref, err)
	}
	d, err := repo.Head(ctx, s.ref.Identifier(), bundleManifestTypes)
	if errors.Is(err, registry.ErrNoDigest) {
		d, err = s.ref.Identifier(), nil // read it to know
	}
	if err != nil {
		return nil, fmt.Errorf("bundle source %s: %w", s.ref, err)
	}
	if d == last {
		return nil, nil
	}
	// Fetch by digest, so what is judged is what HEAD reported.
	data, sig, digest, err := pull(ctx, repo, s.ref.String(), d)
	if err != nil {
		return nil, err
	}
	if digest == last {
		return nil, nil
	}
	return &fetched{name: s.raw + "@" + digest, data: data, sig: sig, id: digest}, nil
}
