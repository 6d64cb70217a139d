package ctrdconn

import (
	"context"
	"errors"
	"io"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Images reads containerd's image records: the reads of the client's
// images.Store (image_store.go).
type Images struct{ client imagesapi.ImagesClient }

// Get returns the image record called name.
func (s Images) Get(ctx context.Context, name string) (images.Image, error) {
	resp, err := s.client.Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return images.Image{}, errgrpc.ToNative(err)
	}
	return imageFromProto(resp.Image), nil
}

// List returns the image records that match any of filters (all: none).
func (s Images) List(ctx context.Context, filters ...string) ([]images.Image, error) {
	resp, err := s.client.List(ctx, &imagesapi.ListImagesRequest{Filters: filters})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	var out []images.Image
	for _, img := range resp.Images {
		out = append(out, imageFromProto(img))
	}
	return out, nil
}

func imageFromProto(img *imagesapi.Image) images.Image {
	return images.Image{
		Name:      img.Name,
		Labels:    img.Labels,
		Target:    descriptorFromProto(img.Target),
		CreatedAt: protobuf.FromTimestamp(img.CreatedAt),
		UpdatedAt: protobuf.FromTimestamp(img.UpdatedAt),
	}
}

// descriptorFromProto is pkg/oci's DescriptorFromProto (that package is
// the runtime-spec generator, far more than this one function).
func descriptorFromProto(d *types.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:   d.GetMediaType(),
		Digest:      digest.Digest(d.GetDigest()),
		Size:        d.GetSize(),
		Annotations: d.GetAnnotations(),
	}
}

// Containers reads containerd's container records: the reads of the
// client's containers.Store (containerstore.go).
type Containers struct {
	client containersapi.ContainersClient
}

// Get returns the container record id.
func (r Containers) Get(ctx context.Context, id string) (containers.Container, error) {
	resp, err := r.client.Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return containers.Container{}, errgrpc.ToNative(err)
	}
	return containerFromProto(resp.Container), nil
}

// List returns the container records that match any of filters (all:
// none), streamed, or in one answer from a containerd without the stream.
func (r Containers) List(ctx context.Context, filters ...string) ([]containers.Container, error) {
	out, err := r.stream(ctx, filters...)
	if errors.Is(err, errStreamNotAvailable) {
		return r.list(ctx, filters...)
	}
	return out, err
}

func (r Containers) list(ctx context.Context, filters ...string) ([]containers.Container, error) {
	resp, err := r.client.List(ctx, &containersapi.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	var out []containers.Container
	for _, c := range resp.Containers {
		out = append(out, containerFromProto(c))
	}
	return out, nil
}

var errStreamNotAvailable = errors.New("streaming api not available")

func (r Containers) stream(ctx context.Context, filters ...string) ([]containers.Container, error) {
	session, err := r.client.ListStream(ctx, &containersapi.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	var out []containers.Container
	for {
		c, err := session.Recv()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
				return nil, errStreamNotAvailable
			}
			return nil, errgrpc.ToNative(err)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		default:
			out = append(out, containerFromProto(c.Container))
		}
	}
}

func containerFromProto(c *containersapi.Container) containers.Container {
	var runtime containers.RuntimeInfo
	if c.Runtime != nil {
		runtime = containers.RuntimeInfo{Name: c.Runtime.Name, Options: c.Runtime.Options}
	}
	extensions := make(map[string]typeurl.Any)
	for k, v := range c.Extensions {
		extensions[k] = v
	}
	return containers.Container{
		ID:          c.ID,
		Labels:      c.Labels,
		Image:       c.Image,
		Runtime:     runtime,
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		CreatedAt:   protobuf.FromTimestamp(c.CreatedAt),
		UpdatedAt:   protobuf.FromTimestamp(c.UpdatedAt),
		Extensions:  extensions,
		SandboxID:   c.Sandbox,
	}
}
