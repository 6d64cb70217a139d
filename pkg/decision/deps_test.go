package decision

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPure keeps the node decision free of the runtime: no NRI, ttrpc or
// containerd (the network-free part is what its API allows: no context is
// used, no client is taken).
func TestPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/containerd/") || strings.HasSuffix(dep, "/pkg/imagestore") || strings.HasSuffix(dep, "/pkg/verify") {
			t.Errorf("pkg/decision depends on %s; keep I/O in pkg/daemon", dep)
		}
	}
}
