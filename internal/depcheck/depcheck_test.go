// Package depcheck guards the layout's dependency direction: only pkg/plugin
// speaks NRI (pkg/daemon, the wiring, reaches it through pkg/plugin); the
// decision packages stay free of runtime plumbing.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

func TestOnlyPluginImportsNRI(t *testing.T) {
	out, err := exec.Command("go", "list", "github.com/nri-csig/nri-csig/pkg/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/pkg/plugin") || strings.HasSuffix(pkg, "/pkg/daemon") {
			continue
		}
		deps, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(deps)) {
			if strings.HasPrefix(dep, "github.com/containerd/nri") {
				t.Errorf("%s depends on %s; only pkg/plugin may speak NRI", pkg, dep)
			}
		}
	}
}
