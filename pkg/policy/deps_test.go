package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the policy package away from the runtime: it must
// never import NRI, ttrpc or containerd (STYLE.md §1).
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		// containerd/nri and containerd/ttrpc included.
		if strings.HasPrefix(dep, "github.com/containerd/") {
			t.Errorf("pkg/policy depends on %s; keep runtime glue in pkg/plugin", dep)
		}
	}
}
