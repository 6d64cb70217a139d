// Package imagestore finds, in containerd's own image and content stores, the
// image digests (manifests and the indexes that list them) that carry a given
// image config digest.
//
// NRI reports a container's image by name, digest and config digest, but only
// the config digest is stable: the name and digest are the first reference of
// the image record, not necessarily what the pod asked for (see
// ../../docs/ARCHITECTURE.md). The config fixes the root filesystem, so a
// container is judged on every manifest in the node's content store whose
// config is the container's, and on every index that lists such a manifest.
package imagestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestSize bounds what is read of a manifest or index: the registry
// protocol caps manifests at 4 MiB.
const maxManifestSize = 4 << 20

// maxDepth bounds nested indexes.
const maxDepth = 4

// ImageLister lists containerd image records (images.Store has this method).
type ImageLister interface {
	List(ctx context.Context, filters ...string) ([]images.Image, error)
}

// Resolver maps config digests to image digests. Manifests are immutable (they
// are addressed by digest), so what was read of them is cached for good.
type Resolver struct {
	images    ImageLister
	content   content.Provider
	namespace string

	mu     sync.Mutex
	parsed map[string]blob // manifest or index digest -> what it says

	// resolved caches Resolve per config digest, so that the NRI request path
	// is a lookup. Image events clear it (Invalidate); entries also expire,
	// for nodes that do not watch events.
	resolved map[string]resolution
	ttl      time.Duration
	now      func() time.Time
}

type resolution struct {
	digests []string
	repos   map[string][]string
	at      time.Time
}

// DefaultTTL bounds how long a resolution is reused without an image event.
const DefaultTTL = 10 * time.Second

// Invalidate forgets every resolution, e.g. when an image record was created,
// updated or deleted.
func (r *Resolver) Invalidate() {
	r.mu.Lock()
	r.resolved = map[string]resolution{}
	r.mu.Unlock()
}

type blob struct {
	isIndex  bool
	config   string               // for a manifest: its config digest
	children []ocispec.Descriptor // for an index: its manifests and nested indexes
}

// New returns a resolver over containerd's image records and content store in
// a containerd namespace (the CRI uses k8s.io).
func New(imgs ImageLister, cs content.Provider, namespace string) *Resolver {
	return &Resolver{images: imgs, content: cs, namespace: namespace, parsed: map[string]blob{},
		resolved: map[string]resolution{}, ttl: DefaultTTL, now: time.Now}
}

// ImageDigests returns the manifest and index digests in the node's stores
// whose config is configDigest, sorted. An empty result is not an error: the
// image may have been removed, or imported without its manifest.
func (r *Resolver) ImageDigests(ctx context.Context, configDigest string) ([]string, error) {
	digests, _, err := r.Resolve(ctx, configDigest)
	return digests, err
}

// Resolve is ImageDigests plus, for each digest, the repositories whose image
// records lead to it (e.g. "registry.example/app"): where its signatures live.
func (r *Resolver) Resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error) {
	r.mu.Lock()
	c, ok := r.resolved[configDigest]
	r.mu.Unlock()
	if ok && r.now().Sub(c.at) < r.ttl {
		return c.digests, c.repos, nil
	}
	at := r.now()
	digests, repos, err := r.resolve(ctx, configDigest)
	if err == nil && len(digests) > 0 {
		r.mu.Lock()
		r.resolved[configDigest] = resolution{digests: digests, repos: repos, at: at}
		r.mu.Unlock()
	}
	return digests, repos, err
}

func (r *Resolver) resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error) {
	ctx = namespaces.WithNamespace(ctx, r.namespace)
	records, err := r.images.List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing containerd images: %w", err)
	}
	var found []string
	repos := map[string][]string{}
	for _, rec := range records {
		ds, err := r.walk(ctx, rec.Target, configDigest, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("reading image %s (%s): %w", rec.Name, rec.Target.Digest, err)
		}
		found = append(found, ds...)
		if repo := Repository(rec.Name); repo != "" {
			for _, d := range ds {
				if !slices.Contains(repos[d], repo) {
					repos[d] = append(repos[d], repo)
				}
			}
		}
	}
	slices.Sort(found)
	return slices.Compact(found), repos, nil
}

// Repository returns the repository of an image record name
// ("registry.example/app:1" -> "registry.example/app"), or "" for names
// that are not references (the CRI also names records by image ID).
func Repository(recordName string) string {
	if strings.HasPrefix(recordName, "sha256:") {
		return ""
	}
	ref, err := name.ParseReference(recordName, name.WeakValidation)
	if err != nil {
		return ""
	}
	return ref.Context().Name()
}

// Names returns the names of the image records.
func (r *Resolver) Names(ctx context.Context) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, r.namespace)
	records, err := r.images.List(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(records))
	for _, rec := range records {
		names = append(names, rec.Name)
	}
	return names, nil
}

// Record returns the digests an image record leads to (its target and, for an
// index, the manifests of it that are on the node) and its repository, for
// verifying signatures as soon as an image lands.
func (r *Resolver) Record(ctx context.Context, recordName string) (digests []string, repo string, err error) {
	ctx = namespaces.WithNamespace(ctx, r.namespace)
	records, err := r.images.List(ctx, "name=="+recordName)
	if err != nil || len(records) == 0 {
		return nil, "", err
	}
	target := records[0].Target
	digests = []string{target.Digest.String()}
	if b, err := r.read(ctx, target); err == nil && b.isIndex {
		for _, c := range b.children {
			if _, err := r.read(ctx, c); err == nil {
				digests = append(digests, c.Digest.String())
			}
		}
	}
	return digests, Repository(recordName), nil
}

// walk returns desc itself when it is a manifest with that config, or desc and
// the matching manifests below it when it is an index.
func (r *Resolver) walk(ctx context.Context, desc ocispec.Descriptor, configDigest string, depth int) ([]string, error) {
	if depth > maxDepth {
		return nil, nil
	}
	if !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
		return nil, nil // e.g. an attestation or a config: not an image
	}
	b, err := r.read(ctx, desc)
	if errdefs.IsNotFound(err) {
		// Indexes list every platform, but only the node's platform is pulled.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !b.isIndex {
		if b.config == configDigest {
			return []string{desc.Digest.String()}, nil
		}
		return nil, nil
	}
	var found []string
	for _, child := range b.children {
		ds, err := r.walk(ctx, child, configDigest, depth+1)
		if err != nil {
			return nil, err
		}
		found = append(found, ds...)
	}
	if len(found) > 0 {
		found = append(found, desc.Digest.String())
	}
	return found, nil
}

// read parses a manifest or index, from the cache when it was read before.
func (r *Resolver) read(ctx context.Context, desc ocispec.Descriptor) (blob, error) {
	key := desc.Digest.String()
	r.mu.Lock()
	b, ok := r.parsed[key]
	r.mu.Unlock()
	if ok {
		return b, nil
	}
	if desc.Size > maxManifestSize {
		return blob{}, fmt.Errorf("%s is %d bytes, larger than a manifest may be", key, desc.Size)
	}
	data, err := content.ReadBlob(ctx, r.content, desc)
	if err != nil {
		return blob{}, err
	}
	// The content store verified the digest on write; check it again since the
	// verdict rests on it.
	if desc.Digest.Validate() != nil || desc.Digest.Algorithm().FromBytes(data) != desc.Digest {
		return blob{}, fmt.Errorf("content of %s does not match its digest", key)
	}
	b, err = parse(desc.MediaType, data)
	if err != nil {
		return blob{}, fmt.Errorf("parsing %s: %w", key, err)
	}
	r.mu.Lock()
	r.parsed[key] = b
	r.mu.Unlock()
	return b, nil
}

// parse reads what matters of a manifest or index. The media type of the
// bytes themselves wins over the descriptor's when they disagree.
func parse(mediaType string, data []byte) (blob, error) {
	var m struct {
		MediaType string               `json:"mediaType"`
		Config    *ocispec.Descriptor  `json:"config"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return blob{}, err
	}
	if m.MediaType != "" {
		mediaType = m.MediaType
	}
	switch {
	case images.IsIndexType(mediaType) || (m.Config == nil && m.Manifests != nil):
		return blob{isIndex: true, children: m.Manifests}, nil
	case m.Config != nil:
		return blob{config: m.Config.Digest.String()}, nil
	default:
		return blob{}, errors.New("neither a manifest (no config) nor an index (no manifests)")
	}
}
