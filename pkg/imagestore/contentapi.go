package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
)

// ContentAPI is containerd's content store over its API connection
// (internal/ctrdconn's GRPC, or the containerd client's Conn), for New. The
// index reads each blob with one Read call; the content.Provider of
// containerd's client asks Info first, two round trips per blob, which at
// 10,000 images is most of the build.
func ContentAPI(conn grpc.ClientConnInterface) content.Provider {
	return contentAPI{Provider: proxy.NewContentStore(conn), client: contentapi.NewContentClient(conn)}
}

type contentAPI struct {
	content.Provider
	client contentapi.ContentClient
}

// wholeReader reads a whole blob of at most limit bytes in one call.
type wholeReader interface {
	readWhole(ctx context.Context, dg digest.Digest, limit int64) ([]byte, error)
}

// readWhole asks for limit+1 bytes (containerd stops at the blob's end), so
// that a blob above the limit is told apart without an Info call.
func (c contentAPI) readWhole(ctx context.Context, dg digest.Digest, limit int64) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when it is left early
	rc, err := c.client.Read(ctx, &contentapi.ReadContentRequest{Digest: dg.String(), Size: limit + 1})
	if err != nil {
		return nil, readError(err)
	}
	var data []byte
	for {
		resp, err := rc.Recv()
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return nil, readError(err)
		}
		if resp.Offset != int64(len(data)) {
			return nil, fmt.Errorf("unreadable: containerd answered offset %d, want %d", resp.Offset, len(data))
		}
		data = append(data, resp.Data...)
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("is above the %d byte limit in the content store", limit)
		}
	}
}

func readError(err error) error {
	err = errgrpc.ToNative(err)
	if isNotFound(err) {
		return errNotPresent
	}
	return fmt.Errorf("unreadable: %v", err)
}

// Client is what ContentOf needs of containerd's client.
type Client interface {
	Conn() any
	ContentStore() content.Store
}

// ContentOf is the content store of c for New: ContentAPI over its
// connection when that is gRPC (it is, unless c was made from a ttrpc
// connection), else c's own content store.
func ContentOf(c Client) content.Provider {
	if conn, ok := c.Conn().(grpc.ClientConnInterface); ok {
		return ContentAPI(conn)
	}
	return c.ContentStore()
}
