package ctrdconn

import (
	"context"
	"fmt"
	"syscall"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/core/content"
	contentproxy "github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/events"
	eventsproxy "github.com/containerd/containerd/v2/core/events/proxy"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/introspection"
	introspectionproxy "github.com/containerd/containerd/v2/core/introspection/proxy"
	"github.com/containerd/containerd/v2/core/snapshots"
	snproxy "github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/dialer"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// dialTimeout is the client's default connection timeout: the longest
// backoff between connection attempts and the shortest time one may take.
const dialTimeout = 10 * time.Second

// Conn is one gRPC connection to containerd. It is safe for concurrent use.
type Conn struct {
	conn *grpc.ClientConn
}

// Dial connects to containerd's socket at address (a path, or unix://…) as
// containerd's client New does: no TLS, its backoff and connect timeout, its
// message size limits. Calls whose ctx carries no containerd namespace
// (pkg/namespaces) run in namespace; "" sets none. The connection is made
// lazily, at the first call, and remade after containerd restarts.
func Dial(address, namespace string) (*Conn, error) {
	bo := backoff.DefaultConfig
	bo.MaxDelay = dialTimeout
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: dialTimeout}),
		grpc.WithContextDialer(dialer.ContextDialer),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
			grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)),
	}
	if namespace != "" {
		unary, stream := namespaceInterceptors(namespace)
		opts = append(opts, grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream))
	}
	conn, err := grpc.NewClient(dialer.DialAddress(address), opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to dial %q: %w", address, err)
	}
	return &Conn{conn: conn}, nil
}

// namespaceInterceptors put namespace on the calls whose ctx has none: the
// containerd-namespace metadata is what containerd's servers read.
func namespaceInterceptors(namespace string) (grpc.UnaryClientInterceptor, grpc.StreamClientInterceptor) {
	withNS := func(ctx context.Context) context.Context {
		if _, ok := namespaces.Namespace(ctx); !ok {
			ctx = namespaces.WithNamespace(ctx, namespace)
		}
		return ctx
	}
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(withNS(ctx), method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(withNS(ctx), desc, cc, method, opts...)
	}
	return unary, stream
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// GRPC is the connection itself, for API clients this package does not
// hand out (the CRI's, containerd's content API).
func (c *Conn) GRPC() grpc.ClientConnInterface { return c.conn }

// ContentStore is containerd's content store (the client's ContentStore).
func (c *Conn) ContentStore() content.Store { return contentproxy.NewContentStore(c.conn) }

// EventService subscribes to containerd's events (the client's EventService).
func (c *Conn) EventService() events.Subscriber { return eventsproxy.NewRemoteEvents(c.conn) }

// IntrospectionService is containerd's introspection API (the client's
// IntrospectionService).
func (c *Conn) IntrospectionService() introspection.Service {
	return introspectionproxy.NewIntrospectionProxy(c.conn)
}

// SnapshotService is the snapshotter called name. Unlike the client's, it
// does not resolve "" to the namespace's default snapshotter.
func (c *Conn) SnapshotService(name string) snapshots.Snapshotter {
	return snproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(c.conn), name)
}

// ImageService reads containerd's image records (the client's ImageService,
// its reads only).
func (c *Conn) ImageService() Images { return Images{client: imagesapi.NewImagesClient(c.conn)} }

// ContainerService reads containerd's container records (the client's
// ContainerService, its reads only).
func (c *Conn) ContainerService() Containers {
	return Containers{client: containersapi.NewContainersClient(c.conn)}
}

// Namespaces lists containerd's namespaces (the client's
// NamespaceService().List).
func (c *Conn) Namespaces(ctx context.Context) ([]string, error) {
	resp, err := namespacesapi.NewNamespacesClient(c.conn).List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	var out []string
	for _, ns := range resp.Namespaces {
		out = append(out, ns.Name)
	}
	return out, nil
}

// ImageConfig is the config descriptor of img for the platform the client
// defaults to (platforms.Default()): the client's Image.Config.
func (c *Conn) ImageConfig(ctx context.Context, img images.Image) (ocispec.Descriptor, error) {
	return img.Config(ctx, c.ContentStore(), platforms.Default())
}

// Task is the task of a container, as LoadTask found it.
type Task struct {
	tasks tasksapi.TasksClient
	id    string
}

// LoadTask returns the task of container id (the client's Container.Task
// with no IO attached). A container without one is errdefs.ErrNotFound.
func (c *Conn) LoadTask(ctx context.Context, containerID string) (Task, error) {
	tasks := tasksapi.NewTasksClient(c.conn)
	resp, err := tasks.Get(ctx, &tasksapi.GetRequest{ContainerID: containerID})
	if err != nil {
		err = errgrpc.ToNative(err)
		if errdefs.IsNotFound(err) {
			return Task{}, fmt.Errorf("no running task found: %w", err)
		}
		return Task{}, err
	}
	return Task{tasks: tasks, id: resp.Process.ID}, nil
}

// Kill sends sig to the task's init process, or with all to every process
// of the task (the client's Task.Kill, with WithKillAll for all).
func (t Task) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := t.tasks.Kill(ctx, &tasksapi.KillRequest{Signal: uint32(sig), ContainerID: t.id, All: all})
	return errgrpc.ToNative(err)
}
