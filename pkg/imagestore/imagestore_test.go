package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// node is a fake containerd: image records in memory (counting Lists) over
// containerd's own local content store in a temporary directory.
type node struct {
	t     testing.TB
	root  string
	cs    content.Store
	mu    sync.Mutex
	recs  map[string]images.Image
	lists int
}

func newNode(t testing.TB) *node {
	t.Helper()
	root := t.TempDir()
	cs, err := local.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, root: root, cs: cs, recs: map[string]images.Image{}}
}

func (n *node) List(context.Context, ...string) ([]images.Image, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lists++
	out := make([]images.Image, 0, len(n.recs))
	for _, r := range n.recs {
		out = append(out, r)
	}
	return out, nil
}

func (n *node) Get(_ context.Context, name string) (images.Image, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.recs[name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return r, nil
}

func (n *node) record(name string, target ocispec.Descriptor) {
	n.mu.Lock()
	n.recs[name] = images.Image{Name: name, Target: target}
	n.mu.Unlock()
}

func (n *node) drop(name string) {
	n.mu.Lock()
	delete(n.recs, name)
	n.mu.Unlock()
}

// put writes bytes into the content store: where the local store keeps a
// committed blob (its own writer fsyncs each one, too slow for 10,000 images).
func (n *node) put(mediaType string, b []byte) ocispec.Descriptor {
	n.t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	path := filepath.Join(n.root, "blobs", "sha256", desc.Digest.Encoded())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o444); err != nil && !os.IsPermission(err) {
		n.t.Fatal(err)
	}
	if _, err := n.cs.Info(context.Background(), desc.Digest); err != nil {
		n.t.Fatalf("the local content store does not see %s: %v", desc.Digest, err)
	}
	return desc
}

func (n *node) putJSON(mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.put(mediaType, b)
}

// config writes an image config whose rootfs is one layer of that marker.
func (n *node) config(marker string) (ocispec.Descriptor, []digest.Digest) {
	diffIDs := []digest.Digest{digest.FromString("layer " + marker), digest.FromString("base")}
	return n.putJSON(ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		Config:   ocispec.ImageConfig{Labels: map[string]string{"marker": marker}},
	}), diffIDs
}

func (n *node) manifest(config ocispec.Descriptor, annotations map[string]string) ocispec.Descriptor {
	return n.putJSON(ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: config, Annotations: annotations, Layers: []ocispec.Descriptor{}})
}

func (n *node) index(children ...ocispec.Descriptor) ocispec.Descriptor {
	return n.putJSON(ocispec.MediaTypeImageIndex, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children})
}

// image puts a single-manifest image and the three records the CRI makes for
// it (tag, repo digest, image ID).
func (n *node) image(repoTag, marker string) (manifest, config ocispec.Descriptor) {
	config, _ = n.config(marker)
	manifest = n.manifest(config, nil)
	n.criRecords(repoTag, manifest, config)
	return manifest, config
}

func (n *node) criRecords(repoTag string, target, config ocispec.Descriptor) {
	repo := repoTag[:strings.LastIndex(repoTag, ":")]
	n.record(repoTag, target)
	n.record(repo+"@"+target.Digest.String(), target)
	n.record(config.Digest.String(), target)
}

func notPresent(size int64) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(fmt.Sprint("never pulled ", size)), Size: size,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}}
}

func newIndex(t *testing.T, n *node) (*Index, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	x := New(n, n.provider(), "k8s.io", WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := x.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	return x, &logs
}

func resolve(t *testing.T, x *Index, config ocispec.Descriptor) ([]string, map[string][]string) {
	t.Helper()
	ds, repos, err := x.Resolve(context.Background(), config.Digest.String())
	if err != nil {
		t.Fatalf("Resolve(%s) = %v", config.Digest, err)
	}
	return ds, repos
}

func strs(ds ...ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest.String())
	}
	slices.Sort(out)
	return out
}

func TestResolve(t *testing.T) {
	n := newNode(t)
	amdCfg, _ := n.config("amd64")
	armCfg, _ := n.config("arm64")
	amd, arm := n.manifest(amdCfg, nil), n.manifest(armCfg, nil)
	idx := n.index(amd, arm, notPresent(1000))
	n.criRecords("reg.example/multi:1", idx, amdCfg)
	single, singleCfg := n.image("reg.example/single:1", "single")
	n.record("other.example/copy:2", single) // the same image from another repository
	x, _ := newIndex(t, n)

	for _, tc := range []struct {
		config ocispec.Descriptor
		want   []string
		repos  map[string][]string
	}{
		{amdCfg, strs(amd, idx), map[string][]string{amd.Digest.String(): {"reg.example/multi"}, idx.Digest.String(): {"reg.example/multi"}}},
		{armCfg, strs(arm, idx), map[string][]string{arm.Digest.String(): {"reg.example/multi"}, idx.Digest.String(): {"reg.example/multi"}}},
		{singleCfg, strs(single), map[string][]string{single.Digest.String(): {"other.example/copy", "reg.example/single"}}},
	} {
		got, repos := resolve(t, x, tc.config)
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(repos, tc.repos) {
			t.Errorf("Resolve(%s) = %v %v, want %v %v", tc.config.Digest, got, repos, tc.want, tc.repos)
		}
	}
	if got, _ := resolve(t, x, notPresent(1)); got != nil {
		t.Errorf("Resolve(unknown config) = %v, want nothing", got)
	}
	if x.Skipped() != 0 {
		t.Errorf("Skipped() = %d on a node with only valid images", x.Skipped())
	}
	if n.lists != 1 {
		t.Errorf("%d Lists, want the one of Build", n.lists)
	}
}

// A lying index (a child for another platform, not on the node, declaring
// 5 MiB) pulled next to other images: every other image resolves exactly as
// before, the liar's own platform too, and the lie is logged and counted once.
func TestLyingIndexAffectsNoOtherImage(t *testing.T) {
	n := newNode(t)
	good, goodCfg := n.image("reg.example/good:1", "good")
	before, _ := newIndex(t, n)
	want, wantRepos := resolve(t, before, goodCfg)

	lieCfg, _ := n.config("liar")
	lieManifest := n.manifest(lieCfg, nil)
	liar := n.index(lieManifest, notPresent(5<<20))
	n.criRecords("reg.example/liar:1", liar, lieCfg)
	x, logs := newIndex(t, n)

	got, repos := resolve(t, x, goodCfg)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(repos, wantRepos) || got[0] != good.Digest.String() {
		t.Errorf("another image resolves to %v %v, want %v %v as before the liar landed", got, repos, want, wantRepos)
	}
	if got, _ := resolve(t, x, lieCfg); !reflect.DeepEqual(got, strs(lieManifest, liar)) {
		t.Errorf("the liar's own platform resolves to %v, want its manifest and index", got)
	}
	if x.Skipped() != 1 {
		t.Errorf("Skipped() = %d, want the one lying descriptor", x.Skipped())
	}
	if c := strings.Count(logs.String(), "imagestore: skipped"); c != 1 || !strings.Contains(logs.String(), "5242880") {
		t.Errorf("the lie was logged %d times (want once, with its declared size):\n%s", c, logs)
	}
	// Rebuilding (e.g. after containerd restarted) does not count it again.
	if err := x.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	if x.Skipped() != 1 {
		t.Errorf("after a rebuild Skipped() = %d, want still 1", x.Skipped())
	}
}

// padded is a valid manifest larger than the manifest limit.
func padded(n *node, config ocispec.Descriptor) ocispec.Descriptor {
	return n.manifest(config, map[string]string{"padding": strings.Repeat("x", maxManifestSize+1)})
}

// An image whose own platform manifest is oversized: its container gets a
// refusal naming the record and the manifest; no other image is affected.
func TestOwnOversizedManifestRefusedPrecisely(t *testing.T) {
	n := newNode(t)
	_, goodCfg := n.image("reg.example/good:1", "good")
	badCfg, _ := n.config("bad")
	big := padded(n, badCfg)
	idx := n.index(big, notPresent(100))
	n.criRecords("reg.example/big:1", idx, badCfg)
	x, _ := newIndex(t, n)

	if got, _ := resolve(t, x, goodCfg); len(got) != 1 {
		t.Errorf("another image resolves to %v", got)
	}
	_, _, err := x.Resolve(context.Background(), badCfg.Digest.String())
	if err == nil {
		t.Fatal("resolved an image whose only manifest is above the limit")
	}
	for _, w := range []string{"image record " + badCfg.Digest.String(), big.Digest.String(), "above the 4194304 byte", "crictl rmi"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal does not say %q: %v", w, err)
		}
	}
	if x.Skipped() != 1 {
		t.Errorf("Skipped() = %d, want 1", x.Skipped())
	}
}

// A record whose target descriptor itself declares more than the limit.
func TestOversizedRecordTargetSkipped(t *testing.T) {
	n := newNode(t)
	_, goodCfg := n.image("reg.example/good:1", "good")
	badCfg, _ := n.config("bad")
	lie := n.manifest(badCfg, nil)
	lie.Size = 5 << 20
	n.record("reg.example/lie:1", lie)
	n.record(badCfg.Digest.String(), lie)
	x, _ := newIndex(t, n)
	if got, _ := resolve(t, x, goodCfg); len(got) != 1 {
		t.Errorf("another image resolves to %v", got)
	}
	if _, _, err := x.Resolve(context.Background(), badCfg.Digest.String()); err == nil || !strings.Contains(err.Error(), "declares 5242880 bytes") {
		t.Errorf("Resolve(own config) = %v, want the declared size refused", err)
	}
}

func TestMalformedManifest(t *testing.T) {
	for name, raw := range map[string]string{
		"not JSON":          `{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": `,
		"no config":         `{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}`,
		"bad config digest": `{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"digest": "sha256:nothex", "size": 1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			_, goodCfg := n.image("reg.example/good:1", "good")
			badCfg, _ := n.config("bad")
			garbled := n.put(ocispec.MediaTypeImageManifest, []byte(raw))
			n.criRecords("reg.example/garbled:1", n.index(garbled), badCfg)
			x, logs := newIndex(t, n)
			if got, _ := resolve(t, x, goodCfg); len(got) != 1 {
				t.Errorf("another image resolves to %v", got)
			}
			_, _, err := x.Resolve(context.Background(), badCfg.Digest.String())
			if err == nil || !strings.Contains(err.Error(), "malformed") || !strings.Contains(err.Error(), garbled.Digest.String()) {
				t.Errorf("Resolve(own config) = %v, want it refused as malformed, naming %s", err, garbled.Digest)
			}
			if x.Skipped() != 1 || !strings.Contains(logs.String(), "malformed") {
				t.Errorf("Skipped() = %d; log:\n%s", x.Skipped(), logs)
			}
		})
	}
}

// Bytes are hashed again before they are believed.
func TestTamperedContentSkipped(t *testing.T) {
	n := newNode(t)
	_, goodCfg := n.image("reg.example/good:1", "good")
	m, cfg := n.image("reg.example/tampered:1", "tampered")
	path := filepath.Join(n.root, "blobs", "sha256", m.Digest.Encoded())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"layers"`), []byte(`"LAYERS"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	x, _ := newIndex(t, n)
	if got, _ := resolve(t, x, goodCfg); len(got) != 1 {
		t.Errorf("another image resolves to %v", got)
	}
	if _, _, err := x.Resolve(context.Background(), cfg.Digest.String()); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("Resolve(tampered) = %v, want a digest mismatch", err)
	}
}

func TestUpdateAndDeleteFollowRecords(t *testing.T) {
	n := newNode(t)
	_, goodCfg := n.image("reg.example/good:1", "good")
	x, _ := newIndex(t, n)
	ctx := context.Background()

	cfg, diffIDs := n.config("new")
	m := n.manifest(cfg, nil)
	idx := n.index(m)
	n.criRecords("reg.example/new:1", idx, cfg)
	for _, name := range []string{"reg.example/new:1", "reg.example/new@" + idx.Digest.String(), cfg.Digest.String()} {
		if err := x.Update(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if got, repos := resolve(t, x, cfg); !reflect.DeepEqual(got, strs(m, idx)) || !reflect.DeepEqual(repos[m.Digest.String()], []string{"reg.example/new"}) {
		t.Errorf("after the create events: %v %v", got, repos)
	}
	if c, ok := x.ConfigOf(idx.Digest.String()); !ok || c != cfg.Digest.String() {
		t.Errorf("ConfigOf(index) = %q %v, want %s", c, ok, cfg.Digest)
	}
	if got := x.ConfigsForChainID(identity.ChainID(diffIDs).String()); !reflect.DeepEqual(got, []string{cfg.Digest.String()}) {
		t.Errorf("ConfigsForChainID = %v, want [%s]", got, cfg.Digest)
	}
	if cands := x.RecordCandidates("reg.example/new:1"); len(cands) != 2 || cands[0].Repositories[0] != "reg.example/new" {
		t.Errorf("RecordCandidates = %+v", cands)
	}

	// The ID record alone has no repository: its digests keep the repository
	// of the other records while they exist.
	n.drop("reg.example/new:1")
	n.drop("reg.example/new@" + idx.Digest.String())
	x.Update(ctx, "reg.example/new:1")
	x.Update(ctx, "reg.example/new@"+idx.Digest.String())
	if got, repos := resolve(t, x, cfg); len(got) != 2 || len(repos) != 0 {
		t.Errorf("with only the ID record left: %v %v, want the digests and no repository", got, repos)
	}
	n.drop(cfg.Digest.String())
	x.Update(ctx, cfg.Digest.String())
	if got, _ := resolve(t, x, cfg); got != nil {
		t.Errorf("after the delete events: %v", got)
	}
	if c, ok := x.ConfigOf(idx.Digest.String()); ok || x.ConfigsForChainID(identity.ChainID(diffIDs).String()) != nil {
		t.Errorf("a deleted image is still indexed: ConfigOf = %q", c)
	}
	if got, _ := resolve(t, x, goodCfg); len(got) != 1 {
		t.Errorf("the other image: %v", got)
	}
	cands, _ := x.Candidates(ctx)
	if len(cands) != 1 || x.Len() != 3 {
		t.Errorf("Candidates = %+v, Len = %d; want only the good image's", cands, x.Len())
	}
	if n.lists != 1 {
		t.Errorf("%d Lists, want only the one of Build: events read one record each", n.lists)
	}
}

// A problem goes away with the record that has it, and is counted again only
// if it comes back.
func TestDeletedBadImageForgotten(t *testing.T) {
	n := newNode(t)
	cfg, _ := n.config("bad")
	n.criRecords("reg.example/big:1", n.index(padded(n, cfg)), cfg)
	x, _ := newIndex(t, n)
	for name := range n.recs {
		n.drop(name)
		x.Update(context.Background(), name)
	}
	if ds, _, err := x.Resolve(context.Background(), cfg.Digest.String()); err != nil || ds != nil {
		t.Errorf("after removal Resolve = %v %v, want nothing", ds, err)
	}
	if len(x.problems) != 0 || x.Len() != 0 {
		t.Errorf("problems %v and %d records remain", x.problems, x.Len())
	}
}

// The first lookup builds the index when nobody called Build.
func TestLazyBuild(t *testing.T) {
	n := newNode(t)
	m, cfg := n.image("reg.example/a:1", "a")
	x := New(n, n.cs, "k8s.io")
	if got, _ := resolve(t, x, cfg); !reflect.DeepEqual(got, strs(m)) {
		t.Errorf("Resolve = %v", got)
	}
}

func TestChainIDOfConfig(t *testing.T) {
	n := newNode(t)
	_, cfg := n.image("reg.example/a:1", "a")
	x, _ := newIndex(t, n)
	ch, ok := x.ChainID(cfg.Digest.String())
	_, diffIDs := n.config("a")
	if want := identity.ChainID(diffIDs).String(); !ok || ch != want {
		t.Errorf("ChainID = %q %v, want %s", ch, ok, want)
	}
}

// fill puts count single-manifest images (three CRI records each) on n.
func fill(b testing.TB, n *node, count int) []ocispec.Descriptor {
	configs := make([]ocispec.Descriptor, 0, count)
	for i := range count {
		_, c := n.image(fmt.Sprintf("reg.example/app%d:1", i), fmt.Sprint(i))
		configs = append(configs, c)
	}
	return configs
}

// BenchmarkResolveMiss is the cost of resolving a config digest that no image
// of the node has, at 10,000 images (the request path on a miss).
func BenchmarkResolveMiss(b *testing.B) {
	n := newNode(b)
	fill(b, n, 10_000)
	x := New(n, n.cs, "k8s.io")
	ctx := context.Background()
	if err := x.Build(ctx); err != nil {
		b.Fatal(err)
	}
	miss := digest.FromString("not on this node").String()
	b.ResetTimer()
	for b.Loop() {
		if ds, _, err := x.Resolve(ctx, miss); err != nil || ds != nil {
			b.Fatal(ds, err)
		}
	}
}

// BenchmarkResolveHit is the cost of resolving an image of the node at 10,000 images.
func BenchmarkResolveHit(b *testing.B) {
	n := newNode(b)
	configs := fill(b, n, 10_000)
	x := New(n, n.cs, "k8s.io")
	ctx := context.Background()
	if err := x.Build(ctx); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if ds, _, err := x.Resolve(ctx, configs[i%len(configs)].Digest.String()); err != nil || len(ds) != 1 {
			b.Fatal(ds, err)
		}
		i++
	}
}

// BenchmarkBuild is the boot build of the index (one List, every manifest and
// config read once from containerd's local content store on disk).
func BenchmarkBuild(b *testing.B) {
	for _, count := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint(count), func(b *testing.B) {
			n := newNode(b)
			fill(b, n, count)
			ctx := context.Background()
			for b.Loop() {
				if err := New(n, n.cs, "k8s.io").Build(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIndexHeapPerImage is the heap the built index holds per image at
// 10,000 single-manifest images (three CRI records each), after a GC. The
// records are listed in fresh memory, as containerd's answer is, so that
// what the index keeps of their names and digests counts.
func BenchmarkIndexHeapPerImage(b *testing.B) {
	n := newNode(b)
	fill(b, n, 10_000)
	ctx := context.Background()
	var per, spans float64
	for range b.N {
		before, beforeSpans := liveHeap()
		x := New(freshLister{n}, n.cs, "k8s.io")
		if err := x.Build(ctx); err != nil {
			b.Fatal(err)
		}
		after, afterSpans := liveHeap()
		per, spans = float64(after-before)/10_000, float64(afterSpans-beforeSpans)/10_000
		runtime.KeepAlive(x)
	}
	b.ReportMetric(per, "bytes/image")
	// What the heap's spans in use grew by: the live bytes and the free slots
	// beside them that the build's garbage left (resident all the same).
	b.ReportMetric(spans, "span-bytes/image")
}

// freshLister answers copies of the records n holds, names and digests
// included, as containerd's API does.
type freshLister struct{ n *node }

func (f freshLister) List(ctx context.Context, filters ...string) ([]images.Image, error) {
	recs, err := f.n.List(ctx, filters...)
	for i, r := range recs {
		recs[i].Name = strings.Clone(r.Name)
		recs[i].Target.Digest = digest.Digest(strings.Clone(string(r.Target.Digest)))
		recs[i].Target.MediaType = strings.Clone(r.Target.MediaType)
	}
	return recs, err
}

// liveHeap returns the live heap and the heap's spans in use after a GC.
func liveHeap() (alloc, inuse int64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), int64(m.HeapInuse)
}

// Deleting most images rebuilds the index's maps (Go maps keep their largest
// size); what stays resolves as before, with its repositories, and what left
// resolves to nothing.
func TestMostImagesDeleted(t *testing.T) {
	n := newNode(t)
	configs := fill(t, n, 40)
	x, _ := newIndex(t, n)
	ctx := context.Background()
	for name := range n.recs {
		if !strings.HasPrefix(name, "reg.example/app1") && !strings.Contains(name, configs[1].Digest.Encoded()) {
			n.drop(name)
			if err := x.Update(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if x.peak >= 4*x.Len() && x.Len() > 0 {
		t.Errorf("peak %d with %d records: the maps were not rebuilt", x.peak, x.Len())
	}
	for i, c := range configs {
		ds, repos, err := x.Resolve(ctx, c.Digest.String())
		kept := i == 1 || (i >= 10 && i < 20) // app1, app10..app19
		if err != nil || (len(ds) == 1) != kept {
			t.Errorf("image %d: Resolve = %v %v, kept %v", i, ds, err, kept)
			continue
		}
		if kept {
			want := []string{fmt.Sprintf("reg.example/app%d", i)}
			if !reflect.DeepEqual(repos[ds[0]], want) {
				t.Errorf("image %d: repositories %v, want %v", i, repos[ds[0]], want)
			}
			if cs := x.ConfigsOf(ds[0]); !reflect.DeepEqual(cs, []string{c.Digest.String()}) {
				t.Errorf("image %d: ConfigsOf = %v", i, cs)
			}
		}
	}
	if got := x.digests.len(); got != 11 {
		t.Errorf("%d image digests indexed, want 11", got)
	}
}

// Compact rebuilds the index from copies and changes no answer.
func TestCompact(t *testing.T) {
	n := newNode(t)
	configs := fill(t, n, 20)
	x, _ := newIndex(t, n)
	ctx := context.Background()
	type answer struct {
		ds    []string
		repos map[string][]string
		chain string
	}
	answers := func() []answer {
		var out []answer
		for _, c := range configs {
			ds, repos, err := x.Resolve(ctx, c.Digest.String())
			if err != nil || len(ds) != 1 {
				t.Fatalf("Resolve(%s) = %v %v", c.Digest, ds, err)
			}
			chain, _ := x.ChainID(c.Digest.String())
			out = append(out, answer{ds, repos, chain})
		}
		return out
	}
	before := answers()
	x.Compact()
	if after := answers(); !reflect.DeepEqual(after, before) {
		t.Fatalf("answers changed by Compact:\n%v\n%v", after, before)
	}
	for _, a := range before {
		if cs := x.ConfigsForChainID(a.chain); len(cs) != 1 {
			t.Errorf("chain %s: configs %v after Compact", a.chain, cs)
		}
	}
}

// ResolveNow answers as Resolve does, and declines, rather than wait, before
// the index is built, while a writer holds it, and for a config not in it.
func TestResolveNow(t *testing.T) {
	n := newNode(t)
	single, singleCfg := n.image("reg.example/single:1", "single")
	x := New(n, n.provider(), "k8s.io", WithLogger(slog.New(slog.DiscardHandler)))
	if _, _, ok := x.ResolveNow(singleCfg.Digest.String()); ok {
		t.Error("answered before the index was built")
	}
	if err := x.Build(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, wantRepos := resolve(t, x, singleCfg)
	got, repos, ok := x.ResolveNow(singleCfg.Digest.String())
	if !ok || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(repos, wantRepos) || got[0] != single.Digest.String() {
		t.Errorf("ResolveNow = %v %v %v, want %v %v", got, repos, ok, want, wantRepos)
	}
	if _, _, ok := x.ResolveNow(notPresent(1).Digest.String()); ok {
		t.Error("answered for a config not in the index (Resolve waits for the image event)")
	}
	x.mu.Lock()
	_, _, ok = x.ResolveNow(singleCfg.Digest.String())
	x.mu.Unlock()
	if ok {
		t.Error("answered while a writer held the index")
	}
}
