package imagestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestSize bounds what is read of a manifest or index: the registry
// protocol caps manifests at 4 MiB.
const maxManifestSize = 4 << 20

// maxConfigSize bounds what is read of an image config (for its rootfs).
const maxConfigSize = 8 << 20

// maxDepth bounds nested indexes.
const maxDepth = 4

// blob is what matters of a manifest or index.
type blob struct {
	isIndex  bool
	config   string               // for a manifest: its config digest
	children []ocispec.Descriptor // for an index: its manifests and nested indexes
}

// errNotPresent: the blob is not in the content store (for an index's child,
// a platform the node never pulled).
var errNotPresent = errors.New("not in the content store")

// readBounded reads the blob desc names from the store, refusing more than
// limit bytes whatever the descriptor declares, and checks the bytes against
// the digest: the verdict rests on them.
func readBounded(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("malformed descriptor: digest %q: %v", desc.Digest, err)
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("descriptor declares %d bytes, above the %d byte limit", desc.Size, limit)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("malformed descriptor: size %d", desc.Size)
	}
	data, err := read(ctx, cs, desc, limit)
	if err != nil {
		return nil, err
	}
	if desc.Digest.Algorithm().FromBytes(data) != desc.Digest {
		return nil, errors.New("content does not match its digest")
	}
	return data, nil
}

// read returns the blob's bytes, at most limit of them.
func read(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if w, ok := cs.(wholeReader); ok {
		return w.readWhole(ctx, desc.Digest, limit)
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if isNotFound(err) {
		return nil, errNotPresent
	}
	if err != nil {
		return nil, fmt.Errorf("unreadable: %v", err)
	}
	defer ra.Close()
	if ra.Size() > limit {
		return nil, fmt.Errorf("is %d bytes in the content store, above the %d byte limit", ra.Size(), limit)
	}
	data := make([]byte, ra.Size())
	if n, err := ra.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && int64(n) == ra.Size()) {
		return nil, fmt.Errorf("unreadable: %v", err)
	}
	return data, nil
}

// readManifest reads and parses a manifest or index.
func readManifest(ctx context.Context, cs content.Provider, desc ocispec.Descriptor) (blob, error) {
	data, err := readBounded(ctx, cs, desc, maxManifestSize)
	if err != nil {
		return blob{}, err
	}
	b, err := parse(desc.MediaType, data)
	if err != nil {
		return blob{}, fmt.Errorf("malformed: %v", err)
	}
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
		if err := m.Config.Digest.Validate(); err != nil {
			return blob{}, fmt.Errorf("config digest %q: %v", m.Config.Digest, err)
		}
		return blob{config: m.Config.Digest.String()}, nil
	default:
		return blob{}, errors.New("neither a manifest (no config) nor an index (no manifests)")
	}
}

// readChainID reads an image config and returns the chain ID of its rootfs
// (what a snapshot of that image is keyed by).
func readChainID(ctx context.Context, cs content.Provider, config string) (string, error) {
	dg, err := digest.Parse(config)
	if err != nil {
		return "", err
	}
	data, err := readBounded(ctx, cs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: dg}, maxConfigSize)
	if err != nil {
		return "", err
	}
	var c struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("malformed: %v", err)
	}
	if len(c.RootFS.DiffIDs) == 0 {
		return "", errors.New("malformed: no rootfs.diff_ids")
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return "", fmt.Errorf("malformed: diff ID %q: %v", d, err)
		}
	}
	return identity.ChainID(c.RootFS.DiffIDs).String(), nil
}
