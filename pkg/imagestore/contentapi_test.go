package imagestore

import (
	"context"
	"net"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/services/content/contentserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// viaContentAPI makes newIndex read through ContentAPI, over containerd's
// own content service in front of the node's store (set by
// TestReadsOverTheContentAPI; no test here runs in parallel).
var viaContentAPI bool

func (n *node) provider() content.Provider {
	if !viaContentAPI {
		return n.cs
	}
	n.t.Helper()
	l := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	contentapi.RegisterContentServer(srv, contentserver.New(n.cs))
	go srv.Serve(l)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close(); srv.Stop() })
	return ContentAPI(conn)
}

// The index reads the same through containerd's content API, one Read per
// blob, as through a content.Provider: the same resolutions, and the same
// refusals of lying, oversized, garbled, tampered and absent content.
func TestReadsOverTheContentAPI(t *testing.T) {
	viaContentAPI = true
	defer func() { viaContentAPI = false }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Resolve", TestResolve},
		{"LyingIndexAffectsNoOtherImage", TestLyingIndexAffectsNoOtherImage},
		{"OwnOversizedManifestRefusedPrecisely", TestOwnOversizedManifestRefusedPrecisely},
		{"OversizedRecordTargetSkipped", TestOversizedRecordTargetSkipped},
		{"MalformedManifest", TestMalformedManifest},
		{"TamperedContentSkipped", TestTamperedContentSkipped},
		{"ChainIDOfConfig", TestChainIDOfConfig},
	} {
		t.Run(tc.name, tc.f)
	}
}
