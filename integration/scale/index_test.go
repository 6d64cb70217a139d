//go:build integration

package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
)

// BenchmarkIndexBuild is the image index's first build (one List, then each
// manifest and config read from containerd's content store over its gRPC
// API), in-process, on a real containerd holding n images: what a daemon
// does before it registers with NRI. reader=store reads through the
// client's content.Provider (Info, then Read: two calls per blob),
// reader=api through imagestore.ContentAPI (one Read), as the daemon does.
//
//	go test -tags integration -run '^$' -bench BenchmarkIndexBuild -benchtime 3x ./integration/scale/
func BenchmarkIndexBuild(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			ctrd, err := testbed.StartContainerd(tools, testbed.ContainerdOptions{ParentDir: "/dev/shm"})
			if err != nil {
				b.Fatal(err)
			}
			defer ctrd.Close()
			imgs, err := testbed.BuildManyImages(tools.Busybox, "registry.invalid", "scale/img", "v", n)
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			for from := 0; from < n; {
				to := min(from+2000, n)
				archive := filepath.Join(dir, "images.tar")
				if err := imgs.WriteOCIArchive(archive, from, to); err != nil {
					b.Fatal(err)
				}
				if err := ctrd.ImportArchive(archive, false); err != nil {
					b.Fatal(err)
				}
				os.Remove(archive)
				from = to
			}
			client, err := containerd.New(ctrd.Socket, containerd.WithDefaultNamespace("k8s.io"))
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			ctx := context.Background()
			readers := []struct {
				name string
				cs   content.Provider
			}{{"store", client.ContentStore()}, {"api", imagestore.ContentOf(client)}}
			for _, rd := range readers {
				b.Run("reader="+rd.name, func(b *testing.B) {
					var took time.Duration
					for range b.N {
						start := time.Now()
						x := imagestore.New(client.ImageService(), rd.cs, "k8s.io")
						if err := x.Build(ctx); err != nil {
							b.Fatal(err)
						}
						took = time.Since(start)
						if x.Len() < n {
							b.Fatalf("indexed %d images, want %d", x.Len(), n)
						}
					}
					b.ReportMetric(took.Seconds(), "build-s")
					table.setIndexBuild(n, rd.name, took)
				})
			}
		})
	}
}
