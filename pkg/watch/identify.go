package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ChainIndex finds the node's images by the chain ID of their root
// filesystem (identity.ChainID of the config's diff_ids). Its answer is read
// from the images' own content, never from names.
type ChainIndex interface {
	ConfigsForChainID(chainID string) []string
}

// rootfs is what a container's root filesystem was found to be.
type rootfs struct {
	// ChainID names the committed snapshot the container's snapshot sits on.
	ChainID string
	// Configs are the config digests of the node's images with that rootfs.
	Configs []string
}

// errUnidentified wraps every reason why a container's image cannot be told.
var errUnidentified = errors.New("the container's root filesystem is not an image's the node knows")

// The runtime spec's type URL, as containerd's client registers it (its
// init; this binary does not link that package): without it a container
// record's spec cannot be decoded. Registering the same path twice is a
// no-op, so a binary that also links the client is fine.
func init() {
	typeurl.Register(&specs.Spec{}, "types.containerd.io", "opencontainers/runtime-spec", strconv.Itoa(specs.VersionMajor), "Spec")
}

// defaultRootPath is where containerd's shims mount the container's snapshot
// (the bundle's "rootfs"); a spec whose root is elsewhere runs another tree.
const defaultRootPath = "rootfs"

// identify finds which image a container runs from its snapshot. containerd
// commits each unpacked layer as a snapshot named by the chain ID of the layers
// up to it (core/unpack), and a container's snapshot is prepared on the chain
// ID of the whole image (client.WithNewSnapshot). The chain ID hashes every
// layer below it, so the immediate parent fixes the whole chain: no walk is
// needed to know the content, only to know the snapshot is a committed one.
func identify(ctx context.Context, rt runtime, idx ChainIndex, c containers.Container) (rootfs, error) {
	fail := func(format string, a ...any) (rootfs, error) {
		return rootfs{}, fmt.Errorf("%w: %s", errUnidentified, fmt.Sprintf(format, a...))
	}
	if err := checkSpecRoot(c); err != nil {
		return fail("%v", err)
	}
	if c.SnapshotKey == "" {
		return fail("the container has no snapshot, so its root filesystem is not an image's")
	}
	info, err := rt.snapshot(ctx, c.Snapshotter, c.SnapshotKey)
	if err != nil {
		return fail("cannot read its snapshot %q (snapshotter %s): %v", c.SnapshotKey, c.Snapshotter, err)
	}
	if info.Kind == snapshots.KindCommitted {
		return fail("its snapshot %q is a committed one, not a container's", c.SnapshotKey)
	}
	if info.Parent == "" {
		return fail("its snapshot %q has no parent: the root filesystem starts empty, it is no image's", c.SnapshotKey)
	}
	parent, err := rt.snapshot(ctx, c.Snapshotter, info.Parent)
	if err != nil {
		return fail("cannot read the parent snapshot %q of its snapshot: %v", info.Parent, err)
	}
	if parent.Kind != snapshots.KindCommitted {
		return fail("the parent %q of its snapshot is not committed", info.Parent)
	}
	configs := idx.ConfigsForChainID(info.Parent)
	if len(configs) == 0 {
		return fail("no image on the node has the root filesystem it runs (chain ID %s)", info.Parent)
	}
	return rootfs{ChainID: info.Parent, Configs: configs}, nil
}

// checkSpecRoot refuses a spec whose root is not the mounted snapshot: runc
// would run whatever tree the path names.
func checkSpecRoot(c containers.Container) error {
	if c.Spec == nil {
		return errors.New("the container has no runtime spec")
	}
	v, err := typeurl.UnmarshalAny(c.Spec)
	if err != nil {
		return fmt.Errorf("cannot read its runtime spec: %v", err)
	}
	spec, ok := v.(*specs.Spec)
	if !ok {
		return fmt.Errorf("its runtime spec is a %T, not an OCI spec", v)
	}
	if spec.Root == nil || filepath.Clean(spec.Root.Path) != defaultRootPath {
		path := ""
		if spec.Root != nil {
			path = spec.Root.Path
		}
		return fmt.Errorf("its spec's root is %q, not the snapshot containerd mounts (%q)", path, defaultRootPath)
	}
	return nil
}
