package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// maxDirIndex bounds index.json of a signature directory (many images).
const maxDirIndex = 16 << 20

const refNameAnnotation = "org.opencontainers.image.ref.name"

// Dir is a local signature store for air-gapped nodes: an OCI image layout
// whose index.json lists signature manifests under the names the registry
// uses, org.opencontainers.image.ref.name = sha256-<hex>.sig (cosign legacy)
// or sha256-<hex> (a referrer carrying a Sigstore bundle). Repository names
// play no part: a signature binds a digest, not a name.
//
// Fetch reads index.json again only when it changed (size or modification
// time), so a lookup costs one map read and the blobs of that digest, not a
// parse of every image's entry.
type Dir struct {
	path string

	mu      sync.Mutex
	stamp   indexStamp
	byRef   map[string][]signature.Descriptor // ref.name annotation -> manifests
	idxErr  error
	hasStat bool
}

type indexStamp struct {
	size int64
	mod  time.Time
}

// NewDir returns the store rooted at path (created by Put when absent).
func NewDir(path string) *Dir { return &Dir{path: path} }

type dirIndex struct {
	SchemaVersion int                    `json:"schemaVersion"`
	MediaType     string                 `json:"mediaType,omitempty"`
	Manifests     []signature.Descriptor `json:"manifests"`
}

func (d *Dir) readIndex() (*dirIndex, error) {
	f, err := os.Open(filepath.Join(d.path, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &dirIndex{SchemaVersion: 2}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDirIndex+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(b) > maxDirIndex {
		return nil, fmt.Errorf("%s/index.json is over %d bytes; split the signature directory", d.path, maxDirIndex)
	}
	var x dirIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", d.path, err)
	}
	return &x, nil
}

func (d *Dir) blobPath(digest string) (string, error) {
	if err := signature.ValidateDigest(digest); err != nil {
		return "", err
	}
	return filepath.Join(d.path, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")), nil
}

func (d *Dir) readBlob(digest string, max int64) ([]byte, error) {
	p, err := d.blobPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// lookup returns the index entries under names, re-reading index.json only
// when it changed since the last read.
func (d *Dir) lookup(names ...string) ([]signature.Descriptor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Stat(filepath.Join(d.path, "index.json"))
	var st indexStamp
	if err == nil {
		st = indexStamp{fi.Size(), fi.ModTime()}
	}
	statFailed := err != nil && !errors.Is(err, os.ErrNotExist)
	if !d.hasStat || st != d.stamp || statFailed {
		x, err := d.readIndex()
		d.stamp, d.hasStat, d.idxErr, d.byRef = st, true, err, nil
		if err == nil && len(x.Manifests) > 0 {
			d.byRef = make(map[string][]signature.Descriptor, len(x.Manifests))
			for _, e := range x.Manifests {
				rn := e.Annotations[refNameAnnotation]
				d.byRef[rn] = append(d.byRef[rn], e)
			}
		}
	}
	if d.idxErr != nil {
		return nil, d.idxErr
	}
	var out []signature.Descriptor
	for _, n := range names {
		out = append(out, d.byRef[n]...)
	}
	return out, nil
}

// dirState is every digest's manifests in a directory, in index order.
type dirState struct {
	order     []string
	manifests map[string][]signature.Manifest
}

// all reads every signature manifest of the directory at once (one parse
// of index.json), for migrating an earlier state directory.
func (d *Dir) all() (*dirState, error) {
	x, err := d.readIndex()
	if err != nil {
		return nil, err
	}
	st := &dirState{manifests: map[string][]signature.Manifest{}}
	for _, e := range x.Manifests {
		rn := e.Annotations[refNameAnnotation]
		digest := "sha256:" + strings.TrimSuffix(strings.TrimPrefix(rn, "sha256-"), ".sig")
		if signature.ValidateDigest(digest) != nil || len(st.manifests[digest]) >= signature.MaxReferrers {
			continue
		}
		sm, err := d.readManifest(rn, e)
		if err != nil {
			continue // unreadable: fetched again
		}
		if _, ok := st.manifests[digest]; !ok {
			st.order = append(st.order, digest)
		}
		st.manifests[digest] = append(st.manifests[digest], sm)
	}
	return st, nil
}

func (d *Dir) readManifest(rn string, e signature.Descriptor) (signature.Manifest, error) {
	sm := signature.Manifest{Source: d.path + ":" + rn + "@" + e.Digest, Blobs: map[string][]byte{}}
	raw, err := d.readBlob(e.Digest, signature.MaxManifestSize)
	if err != nil {
		return sm, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	sm.Raw = raw
	if m, err := signature.ParseManifest(raw); err == nil {
		for _, l := range m.Layers {
			if b, err := d.readBlob(l.Digest, signature.MaxBlobSize(l.MediaType)); err == nil {
				sm.Blobs[l.Digest] = b
			}
		}
	}
	return sm, nil
}

// answersByDigestOnly: a directory is keyed by digest, not repository.
func (d *Dir) answersByDigestOnly() {}

// Fetch returns the signature manifests stored for image's digest.
func (d *Dir) Fetch(_ context.Context, image name.Digest) ([]signature.Manifest, error) {
	digest := image.DigestStr()
	if err := signature.ValidateDigest(digest); err != nil {
		return nil, err
	}
	entries, err := d.lookup(signature.SignatureTag(digest), signature.FallbackTag(digest))
	if err != nil {
		return nil, err
	}
	var out []signature.Manifest
	for _, e := range entries {
		rn := e.Annotations[refNameAnnotation]
		if len(out) >= signature.MaxReferrers {
			return out, fmt.Errorf("%s: more than %d signature manifests for %s", d.path, signature.MaxReferrers, digest)
		}
		sm, err := d.readManifest(rn, e)
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
	}
	return out, nil
}

// Put stores the signature manifests of image (as Registry.Fetch returned
// them) in the directory, replacing what was stored for that digest.
func (d *Dir) Put(image name.Digest, manifests []signature.Manifest) error {
	digest := image.DigestStr()
	x, err := d.readIndex()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.path, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.path, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	kept := x.Manifests[:0]
	for _, e := range x.Manifests {
		rn := e.Annotations[refNameAnnotation]
		if rn != signature.SignatureTag(digest) && rn != signature.FallbackTag(digest) {
			kept = append(kept, e)
		}
	}
	x.Manifests = kept
	write := func(b []byte) (string, error) {
		dg := signature.DigestOf(b)
		p, err := d.blobPath(dg)
		if err != nil {
			return "", err
		}
		return dg, os.WriteFile(p, b, 0o644)
	}
	for _, sm := range manifests {
		m, err := signature.ParseManifest(sm.Raw)
		if err != nil {
			return fmt.Errorf("not storing %s: %w", sm.Source, err)
		}
		for _, b := range sm.Blobs {
			if _, err := write(b); err != nil {
				return err
			}
		}
		dg, err := write(sm.Raw)
		if err != nil {
			return err
		}
		rn := signature.FallbackTag(digest)
		for _, l := range m.Layers {
			if l.MediaType == signature.SimpleSigningMediaType {
				rn = signature.SignatureTag(digest)
			}
		}
		mt := m.MediaType
		if mt == "" {
			mt = "application/vnd.oci.image.manifest.v1+json"
		}
		x.Manifests = append(x.Manifests, signature.Descriptor{
			MediaType: mt, Digest: dg, Size: int64(len(sm.Raw)),
			Annotations: map[string]string{refNameAnnotation: rn},
		})
	}
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.path, ".index.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.path, "index.json"))
}
