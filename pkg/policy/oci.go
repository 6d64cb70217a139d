package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
	allowHTTP bool
	httpHosts []string // registries (host[:port]) that may be reached over plain HTTP
	keychain  authn.Keychain
	transport http.RoundTripper
}

// WithAllowHTTP allows plain HTTP to any registry. By default plain HTTP is
// used only for loopback registries (localhost, 127.0.0.0/8, ::1); any other
// registry must speak HTTPS, even those on private addresses, which
// go-containerregistry would otherwise reach over HTTP.
func WithAllowHTTP(allow bool) RegistryOption {
	return func(o *registryOptions) { o.allowHTTP = allow }
}

// WithInsecureRegistries allows plain HTTP to the named registries
// (host[:port], as in the node config's insecureRegistries), and only to them.
func WithInsecureRegistries(hosts ...string) RegistryOption {
	return func(o *registryOptions) { o.httpHosts = append(o.httpHosts, hosts...) }
}

// WithKeychain sets the registry credentials. The default is
// authn.DefaultKeychain (the Docker config of the user running the command).
func WithKeychain(k authn.Keychain) RegistryOption {
	return func(o *registryOptions) { o.keychain = k }
}

// WithTransport sets the HTTP transport. The default is remote.DefaultTransport.
func WithTransport(t http.RoundTripper) RegistryOption {
	return func(o *registryOptions) { o.transport = t }
}

func makeRegistryOptions(ctx context.Context, opts []RegistryOption) (registryOptions, []remote.Option) {
	o := registryOptions{keychain: authn.DefaultKeychain, transport: remote.DefaultTransport}
	for _, opt := range opts {
		opt(&o)
	}
	t := o.transport
	if !o.allowHTTP {
		t = httpGuard{next: t, hosts: o.httpHosts}
	}
	return o, []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain), remote.WithTransport(t)}
}

func parseRef(ref string, o registryOptions) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("bundle reference %q: %w; use registry/repository:tag or @sha256:...", ref, err)
	}
	if o.allowHTTP || slices.Contains(o.httpHosts, r.Context().RegistryStr()) {
		// name.Insecure lets go-containerregistry fall back to plain HTTP.
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// httpGuard refuses plain HTTP to registries that are neither on loopback
// nor listed.
type httpGuard struct {
	next  http.RoundTripper
	hosts []string
}

func (g httpGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !isLoopback(r.URL.Hostname()) && !slices.Contains(g.hosts, r.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to registry %s: only loopback registries are reached without TLS; serve it over HTTPS or allow HTTP explicitly (--allow-http-registry, or the node config's insecureRegistries)", r.URL.Host)
	}
	return g.next.RoundTrip(r)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PushBundle pushes the bundle bytes (and the signature document, when sig is
// non-empty) to ref as an OCI artifact and returns the manifest digest. It
// checks the bundle first: a registry is no place for an invalid one.
func PushBundle(ctx context.Context, ref string, data, sig []byte, opts ...RegistryOption) (string, error) {
	b, err := ParseBundle(ref, data)
	if err != nil {
		return "", fmt.Errorf("refusing to push an invalid bundle: %w", err)
	}
	o, ropts := makeRegistryOptions(ctx, opts)
	r, err := parseRef(ref, o)
	if err != nil {
		return "", err
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
	if err := remote.Write(r, img, ropts...); err != nil {
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
	o, ropts := makeRegistryOptions(ctx, opts)
	r, err := parseRef(ref, o)
	if err != nil {
		return nil, nil, "", err
	}
	return pull(r, ropts)
}

func pull(r name.Reference, ropts []remote.Option) (data, sig []byte, digest string, err error) {
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
	}
	d, err := img.Digest()
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
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return nil, nil, "", fmt.Errorf("pull bundle %s: %w", r, err)
		}
		if *dst, err = readLayer(layer, limit); err != nil {
			return nil, nil, "", fmt.Errorf("pull bundle %s: layer %s: %w", r, l.MediaType, err)
		}
	}
	if data == nil {
		return nil, nil, "", fmt.Errorf("pull bundle %s: the artifact has no %s layer; push the bundle again", r, BundleMediaType)
	}
	return data, sig, d.String(), nil
}

// readLayer reads a layer, whose digest go-containerregistry checks as it
// is read, up to limit bytes.
func readLayer(l v1.Layer, limit int64) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errors.New("larger than its manifest says")
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// WithOCISource adds an OCI artifact source: the store polls ref (a tag, or
// a digest) at its interval, fetches the artifact when the manifest digest
// changed, and judges it like any other bundle.
func WithOCISource(ref string, opts ...RegistryOption) StoreOption {
	return func(so *storeOptions) error {
		src := &ociSource{ref: ref, opts: opts}
		o, _ := makeRegistryOptions(context.Background(), opts)
		if _, err := parseRef(ref, o); err != nil {
			return err
		}
		so.sources = append(so.sources, src)
		return nil
	}
}

type ociSource struct {
	ref  string
	opts []RegistryOption
}

func (s *ociSource) String() string { return s.ref }

func (s *ociSource) fetch(ctx context.Context, last string) (*fetched, error) {
	o, ropts := makeRegistryOptions(ctx, s.opts)
	r, err := parseRef(s.ref, o)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Head(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("bundle source %s: %w", s.ref, err)
	}
	if desc.Digest.String() == last {
		return nil, nil
	}
	// Fetch by digest, so what is judged is what HEAD reported.
	pinned := r.Context().Digest(desc.Digest.String())
	data, sig, digest, err := pull(pinned, ropts)
	if err != nil {
		return nil, err
	}
	return &fetched{name: s.ref + "@" + digest, data: data, sig: sig, id: digest}, nil
}
