package verify

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the verification path free of the runtime glue
// (STYLE.md §1): pkg/verify, pkg/signature and pkg/sign never import NRI,
// ttrpc or containerd, nor the full sigstore-go stack (see the note in
// pkg/signature/bundle.go).
func TestDependencies(t *testing.T) {
	forbidden := []string{"github.com/containerd/", "github.com/sigstore/sigstore-go", "github.com/sigstore/sigstore/", "github.com/sigstore/rekor"}
	for _, pkg := range []string{".", "../signature", "../sign"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
