package watch

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"

	"github.com/nri-csig/nri-csig/pkg/imagestore"
)

// runtime is what the watcher reads from containerd and does to it (a fake in
// unit tests). Every call runs in the containerd namespace of ctx.
type runtime interface {
	container(ctx context.Context, id string) (containers.Container, error)
	snapshot(ctx context.Context, snapshotter, key string) (snapshots.Info, error)
	// imageConfig is the config digest of the image record called name.
	imageConfig(ctx context.Context, name string) (string, error)
	// resolve returns the image digests whose config is configDigest and
	// the repositories each was pulled from.
	resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error)
	// pinnedConfigs are the config digests of the images the CRI pinned
	// (its sandbox image).
	pinnedConfigs(ctx context.Context) ([]string, error)
	kill(ctx context.Context, id string) error
}

// clientRuntime is runtime on a containerd client.
type clientRuntime struct{ client *containerd.Client }

func (r clientRuntime) container(ctx context.Context, id string) (containers.Container, error) {
	return r.client.ContainerService().Get(ctx, id)
}

func (r clientRuntime) snapshot(ctx context.Context, snapshotter, key string) (snapshots.Info, error) {
	if snapshotter == "" {
		return snapshots.Info{}, errors.New("the container names no snapshotter")
	}
	return r.client.SnapshotService(snapshotter).Stat(ctx, key)
}

func (r clientRuntime) imageConfig(ctx context.Context, name string) (string, error) {
	img, err := r.client.GetImage(ctx, name)
	if err != nil {
		return "", err
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return "", err
	}
	return cfg.Digest.String(), nil
}

func (r clientRuntime) resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error) {
	ns, _ := namespaces.Namespace(ctx)
	return imagestore.New(r.client.ImageService(), r.client.ContentStore(), ns).Resolve(ctx, configDigest)
}

// labelPinned is the label the CRI puts on the image records of its pinned
// images (pinned_images in its config; by default only the sandbox image).
const labelPinned = "io.cri-containerd.pinned"

func (r clientRuntime) pinnedConfigs(ctx context.Context) ([]string, error) {
	imgs, err := r.client.ImageService().List(ctx, `labels."`+labelPinned+`"==pinned`)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rec := range imgs {
		cfg, err := containerd.NewImage(r.client, rec).Config(ctx)
		if err != nil {
			continue // an unreadable pinned image is no sandbox image: judged
		}
		out = append(out, cfg.Digest.String())
	}
	return out, nil
}

func (r clientRuntime) kill(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// ScanIndex is a stop-gap ChainIndex over the image records of one containerd
// namespace, until pkg/imagestore's index is wired. It rebuilds its map after
// Invalidate (the watcher calls it on every image event of the namespace and
// when it resubscribes), listing the records and reading the rootfs of those it
// has not seen (cached by manifest digest); other lookups are a map read.
type ScanIndex struct {
	client *containerd.Client
	ns     string
	mu     sync.Mutex
	dirty  bool
	seen   map[string]scanned  // by image record target digest
	chains map[string][]string // chain ID -> configs
}

type scanned struct{ config, chainID string }

// NewScanIndex returns a ScanIndex on the images of namespace ns.
func NewScanIndex(client *containerd.Client, ns string) *ScanIndex {
	return &ScanIndex{client: client, ns: ns, dirty: true, seen: map[string]scanned{}}
}

// Invalidate makes the next lookup read the image records again.
func (x *ScanIndex) Invalidate() {
	x.mu.Lock()
	x.dirty = true
	x.mu.Unlock()
}

// scanTimeout bounds one rebuild.
const scanTimeout = 5 * time.Second

// maxScanCache bounds the per-manifest cache; it is dropped whole when full.
const maxScanCache = 10000

// ConfigsForChainID returns the configs of the namespace's images whose
// rootfs chain ID is chainID.
func (x *ScanIndex) ConfigsForChainID(chainID string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dirty {
		if err := x.rebuild(); err != nil {
			return nil // stays dirty: the next lookup tries again
		}
		x.dirty = false
	}
	return x.chains[chainID]
}

func (x *ScanIndex) rebuild() error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), x.ns), scanTimeout)
	defer cancel()
	recs, err := x.client.ImageService().List(ctx)
	if err != nil {
		return err
	}
	if len(x.seen) > maxScanCache {
		x.seen = map[string]scanned{}
	}
	chains := map[string][]string{}
	for _, rec := range recs {
		key := rec.Target.Digest.String()
		s, ok := x.seen[key]
		if !ok {
			img := containerd.NewImage(x.client, rec)
			cfg, err := img.Config(ctx)
			if err != nil {
				continue // unreadable here: no container can be matched to it
			}
			diffIDs, err := img.RootFS(ctx)
			if err != nil {
				continue
			}
			s = scanned{config: cfg.Digest.String(), chainID: identity.ChainID(diffIDs).String()}
			x.seen[key] = s
		}
		if !contains(chains[s.chainID], s.config) {
			chains[s.chainID] = append(chains[s.chainID], s.config)
		}
	}
	x.chains = chains
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
