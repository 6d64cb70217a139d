//go:build !nodaemon && !nodeonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: c1\nallowlists:\n  - namespace: nri-csig-system\n    digests:\n      - sha256:"+strings.Repeat("ab", 32)+"\n"), 0o644)
	out, _, err := run(t, "check-config", good)
	if err != nil || !strings.Contains(out, `ok (cluster "c1", 1 namespaces with an allow list)`) {
		t.Errorf("check-config %s = %q, %v; want ok", good, out, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\nallowlist: []\n"), 0o644)
	out, _, err = run(t, "check-config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+":3") {
		t.Errorf("check-config %s = %q, %v; want an error naming line 3", bad, out, err)
	}
	if _, _, err := run(t, "check-config", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Errorf("check-config of a missing file succeeded")
	}
}
