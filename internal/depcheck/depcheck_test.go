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

// TestNodeLinksNoKMS: nodes verify with public keys from the bundle and never
// call KMS, so the daemon's packages must not link the Alibaba Cloud SDK
// (only pkg/keyref, used by the signing CLI, opens KMS keys).
func TestNodeLinksNoKMS(t *testing.T) {
	for _, pkg := range []string{"./pkg/daemon", "./pkg/plugin", "./pkg/verify", "./pkg/policy", "./pkg/keys"} {
		deps, err := exec.Command("go", "list", "-deps", "github.com/nri-csig/nri-csig/"+strings.TrimPrefix(pkg, "./")).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(deps)) {
			if strings.HasPrefix(dep, "github.com/alibabacloud-go/") || strings.HasPrefix(dep, "github.com/aliyun/") {
				t.Errorf("%s links %s; the node must not link a KMS SDK (open keys through pkg/keyref in the CLI only)", pkg, dep)
			}
		}
	}
}
