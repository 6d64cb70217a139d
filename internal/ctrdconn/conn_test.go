package ctrdconn

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// fakeContainerd answers the calls Conn makes from a few records, per
// containerd namespace (read from the call's metadata, as containerd does),
// and records the kills it is asked for.
type fakeContainerd struct {
	images     map[string][]*imagesapi.Image // by namespace
	containers map[string][]*containersapi.Container
	tasks      map[string]string // container ID (namespace/ID) → process ID
	noStream   bool              // ListStream is unimplemented (an old containerd)

	mu    sync.Mutex
	kills []*tasksapi.KillRequest
}

func ns(ctx context.Context) string {
	n, _ := namespaces.Namespace(ctx)
	return n
}

type imagesServer struct {
	imagesapi.UnimplementedImagesServer
	*fakeContainerd
}

func (f imagesServer) Get(ctx context.Context, req *imagesapi.GetImageRequest) (*imagesapi.GetImageResponse, error) {
	for _, img := range f.images[ns(ctx)] {
		if img.Name == req.Name {
			return &imagesapi.GetImageResponse{Image: img}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "image %q: not found", req.Name)
}

func (f imagesServer) List(ctx context.Context, req *imagesapi.ListImagesRequest) (*imagesapi.ListImagesResponse, error) {
	return &imagesapi.ListImagesResponse{Images: f.images[ns(ctx)]}, nil
}

type containersServer struct {
	containersapi.UnimplementedContainersServer
	*fakeContainerd
}

func (f containersServer) Get(ctx context.Context, req *containersapi.GetContainerRequest) (*containersapi.GetContainerResponse, error) {
	for _, c := range f.containers[ns(ctx)] {
		if c.ID == req.ID {
			return &containersapi.GetContainerResponse{Container: c}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "container %q: not found", req.ID)
}

func (f containersServer) List(ctx context.Context, _ *containersapi.ListContainersRequest) (*containersapi.ListContainersResponse, error) {
	return &containersapi.ListContainersResponse{Containers: f.containers[ns(ctx)]}, nil
}

func (f containersServer) ListStream(_ *containersapi.ListContainersRequest, s containersapi.Containers_ListStreamServer) error {
	if f.noStream {
		return status.Error(codes.Unimplemented, "unknown method ListStream")
	}
	for _, c := range f.containers[ns(s.Context())] {
		if err := s.Send(&containersapi.ListContainerMessage{Container: c}); err != nil {
			return err
		}
	}
	return nil
}

type tasksServer struct {
	tasksapi.UnimplementedTasksServer
	*fakeContainerd
}

func (f tasksServer) Get(ctx context.Context, req *tasksapi.GetRequest) (*tasksapi.GetResponse, error) {
	pid, ok := f.tasks[ns(ctx)+"/"+req.ContainerID]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %q: not found", req.ContainerID)
	}
	return &tasksapi.GetResponse{Process: &task.Process{ContainerID: req.ContainerID, ID: pid}}, nil
}

func (f tasksServer) Kill(ctx context.Context, req *tasksapi.KillRequest) (*emptypb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills = append(f.kills, req)
	return &emptypb.Empty{}, nil
}

type namespacesServer struct {
	namespacesapi.UnimplementedNamespacesServer
	*fakeContainerd
}

func (f namespacesServer) List(context.Context, *namespacesapi.ListNamespacesRequest) (*namespacesapi.ListNamespacesResponse, error) {
	return &namespacesapi.ListNamespacesResponse{Namespaces: []*namespacesapi.Namespace{{Name: "default"}, {Name: "k8s.io"}}}, nil
}

// serve starts f on a unix socket and dials it with default namespace
// "k8s.io".
func serve(t *testing.T, f *fakeContainerd) *Conn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	imagesapi.RegisterImagesServer(srv, imagesServer{fakeContainerd: f})
	containersapi.RegisterContainersServer(srv, containersServer{fakeContainerd: f})
	tasksapi.RegisterTasksServer(srv, tasksServer{fakeContainerd: f})
	namespacesapi.RegisterNamespacesServer(srv, namespacesServer{fakeContainerd: f})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	c, err := Dial(sock, "k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestImagesInTheDefaultNamespaceUnlessCtxNamesOne(t *testing.T) {
	c := serve(t, &fakeContainerd{images: map[string][]*imagesapi.Image{
		"k8s.io":  {{Name: "cri", Target: &types.Descriptor{MediaType: "m", Digest: "sha256:aa", Size: 3}, Labels: map[string]string{"l": "v"}}},
		"default": {{Name: "ctr"}, {Name: "ctr2"}},
	}})
	ctx := t.Context()
	img, err := c.ImageService().Get(ctx, "cri")
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != "sha256:aa" || img.Target.Size != 3 || img.Target.MediaType != "m" || img.Labels["l"] != "v" {
		t.Errorf("image = %+v", img)
	}
	got, err := c.ImageService().List(namespaces.WithNamespace(ctx, "default"))
	if err != nil || len(got) != 2 || got[0].Name != "ctr" {
		t.Errorf("List in namespace default = %v, %v; want its two records", got, err)
	}
	if _, err := c.ImageService().Get(ctx, "ctr"); !errdefs.IsNotFound(err) {
		t.Errorf("Get of a record of another namespace: %v; want not found", err)
	}
}

func TestContainersStreamedOrListed(t *testing.T) {
	for _, noStream := range []bool{false, true} {
		f := &fakeContainerd{noStream: noStream, containers: map[string][]*containersapi.Container{
			"default": {{ID: "a", Snapshotter: "overlayfs", SnapshotKey: "a"}, {ID: "b", Sandbox: "s"}},
		}}
		c := serve(t, f)
		ctx := namespaces.WithNamespace(t.Context(), "default")
		got, err := c.ContainerService().List(ctx)
		if err != nil || len(got) != 2 || got[0].Snapshotter != "overlayfs" || got[1].SandboxID != "s" {
			t.Errorf("noStream=%v: List = %+v, %v", noStream, got, err)
		}
		if _, err := c.ContainerService().Get(ctx, "x"); !errdefs.IsNotFound(err) {
			t.Errorf("Get of a missing container: %v; want not found", err)
		}
	}
}

func TestTaskKill(t *testing.T) {
	f := &fakeContainerd{tasks: map[string]string{"k8s.io/c1": "c1"}}
	c := serve(t, f)
	ctx := t.Context()
	if _, err := c.LoadTask(ctx, "c2"); !errdefs.IsNotFound(err) {
		t.Errorf("LoadTask of a container without a task: %v; want not found", err)
	}
	tk, err := c.LoadTask(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Kill(ctx, syscall.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if err := tk.Kill(ctx, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if len(f.kills) != 2 || f.kills[0].ContainerID != "c1" || !f.kills[0].All || f.kills[0].Signal != uint32(syscall.SIGKILL) ||
		f.kills[1].All || f.kills[1].Signal != uint32(syscall.SIGTERM) {
		t.Errorf("kills = %v", f.kills)
	}
}

func TestNamespaces(t *testing.T) {
	c := serve(t, &fakeContainerd{})
	got, err := c.Namespaces(t.Context())
	if err != nil || len(got) != 2 || got[0] != "default" || got[1] != "k8s.io" {
		t.Errorf("Namespaces = %v, %v", got, err)
	}
}
