package watch

import (
	"context"
	"errors"
	"syscall"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/nri-csig/nri-csig/internal/ctrdconn"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
)

// runtime is what the watcher reads from containerd and does to it (a fake in
// unit tests). Every call runs in the containerd namespace of ctx.
type runtime interface {
	container(ctx context.Context, id string) (containers.Container, error)
	snapshot(ctx context.Context, snapshotter, key string) (snapshots.Info, error)
	// imageConfig is the config digest of the image record called name, and
	// the manifest or index digest the record points at.
	imageConfig(ctx context.Context, name string) (config, target string, err error)
	// resolve returns the image digests whose config is configDigest and
	// the repositories each was pulled from.
	resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error)
	// pinnedConfigs are the config digests of the images the CRI pinned
	// (its sandbox image).
	pinnedConfigs(ctx context.Context) ([]string, error)
	kill(ctx context.Context, id string) error
}

// clientRuntime is runtime on a containerd connection.
type clientRuntime struct{ client *ctrdconn.Conn }

func (r clientRuntime) container(ctx context.Context, id string) (containers.Container, error) {
	return r.client.ContainerService().Get(ctx, id)
}

func (r clientRuntime) snapshot(ctx context.Context, snapshotter, key string) (snapshots.Info, error) {
	if snapshotter == "" {
		return snapshots.Info{}, errors.New("the container names no snapshotter")
	}
	return r.client.SnapshotService(snapshotter).Stat(ctx, key)
}

func (r clientRuntime) imageConfig(ctx context.Context, name string) (string, string, error) {
	img, err := r.client.ImageService().Get(ctx, name)
	if err != nil {
		return "", "", err
	}
	cfg, err := r.client.ImageConfig(ctx, img)
	if err != nil {
		return "", "", err
	}
	return cfg.Digest.String(), img.Target.Digest.String(), nil
}

func (r clientRuntime) resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error) {
	ns, _ := namespaces.Namespace(ctx)
	return imagestore.New(r.client.ImageService(), imagestore.ContentAPI(r.client.GRPC()), ns).Resolve(ctx, configDigest)
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
		cfg, err := r.client.ImageConfig(ctx, rec)
		if err != nil {
			continue // an unreadable pinned image is no sandbox image: judged
		}
		out = append(out, cfg.Digest.String())
	}
	return out, nil
}

func (r clientRuntime) kill(ctx context.Context, id string) error {
	if _, err := r.client.ContainerService().Get(ctx, id); err != nil {
		return err
	}
	task, err := r.client.LoadTask(ctx, id)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
