package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memStore is a content store and image list in memory.
type memStore struct {
	blobs  map[digest.Digest][]byte
	images []images.Image
}

type readerAt struct{ *bytes.Reader }

func (readerAt) Close() error { return nil }

func (m *memStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return readerAt{bytes.NewReader(b)}, nil
}

func (m *memStore) List(context.Context, ...string) ([]images.Image, error) { return m.images, nil }

func (m *memStore) add(v any, mediaType string) ocispec.Descriptor {
	b, _ := json.Marshal(v)
	d := digest.FromBytes(b)
	m.blobs[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func (m *memStore) manifest(config digest.Digest) ocispec.Descriptor {
	return m.add(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: config, Size: 1}}, ocispec.MediaTypeImageManifest)
}

func cfg(n byte) digest.Digest { return digest.FromBytes([]byte{n}) }

func TestImageDigests(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}}
	amd64 := m.manifest(cfg(1))
	arm64 := m.manifest(cfg(2))
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("not pulled"), Size: 10}
	index := m.add(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd64, arm64, missing}}, ocispec.MediaTypeImageIndex)
	single := m.manifest(cfg(3))
	m.images = []images.Image{
		{Name: "reg/multi:1", Target: index},
		{Name: "reg/multi@" + amd64.Digest.String(), Target: amd64},
		{Name: "reg/single:1", Target: single},
	}
	r := New(m, m, "k8s.io")
	for _, tc := range []struct {
		config digest.Digest
		want   []string
	}{
		{cfg(1), sorted(amd64.Digest.String(), index.Digest.String())},
		{cfg(2), sorted(arm64.Digest.String(), index.Digest.String())},
		{cfg(3), []string{single.Digest.String()}},
		{cfg(9), nil},
	} {
		got, err := r.ImageDigests(context.Background(), tc.config.String())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ImageDigests(%s) = %v, want %v", tc.config, got, tc.want)
		}
	}
}

func TestImageDigestsRejectsTamperedContent(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}}
	d := m.manifest(cfg(1))
	m.blobs[d.Digest] = bytes.Replace(m.blobs[d.Digest], []byte("sha256"), []byte("SHA256"), 1)
	m.images = []images.Image{{Name: "x", Target: d}}
	if _, err := New(m, m, "k8s.io").ImageDigests(context.Background(), cfg(1).String()); err == nil {
		t.Fatal("accepted a manifest whose bytes do not match its digest")
	}
}

func TestImageDigestsRefusesHugeManifest(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}}
	d := m.manifest(cfg(1))
	d.Size = maxManifestSize + 1
	m.images = []images.Image{{Name: "x", Target: d}}
	if _, err := New(m, m, "k8s.io").ImageDigests(context.Background(), cfg(1).String()); err == nil {
		t.Fatal("read a manifest larger than the registry protocol allows")
	}
}

func sorted(a, b string) []string {
	if a > b {
		a, b = b, a
	}
	return []string{a, b}
}

func TestResolveIsCachedUntilInvalidated(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}}
	first := m.manifest(cfg(1))
	m.images = []images.Image{{Name: "registry.example/app:1", Target: first}}
	r := New(m, m, "k8s.io")
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	got, repos, err := r.Resolve(context.Background(), cfg(1).String())
	if err != nil || len(got) != 1 || repos[first.Digest.String()][0] != "registry.example/app" {
		t.Fatalf("Resolve = %v %v %v", got, repos, err)
	}
	// A second record with the same config: not seen until invalidated or expired.
	second := m.add(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{first}}, ocispec.MediaTypeImageIndex)
	m.images = append(m.images, images.Image{Name: "reg/other:1", Target: second})
	if got, _, _ := r.Resolve(context.Background(), cfg(1).String()); len(got) != 1 {
		t.Fatalf("the cache was not used: %v", got)
	}
	r.Invalidate()
	if got, _, _ := r.Resolve(context.Background(), cfg(1).String()); len(got) != 2 {
		t.Fatalf("after Invalidate: %v, want the manifest and the index", got)
	}
	m.images = m.images[:1]
	now = now.Add(DefaultTTL + time.Second)
	if got, _, _ := r.Resolve(context.Background(), cfg(1).String()); len(got) != 1 {
		t.Fatalf("an expired resolution was reused: %v", got)
	}
}
