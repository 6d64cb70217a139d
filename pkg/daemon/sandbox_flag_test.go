package daemon

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// A malformed sandbox image digest is refused at start: it would never match,
// and every pod sandbox would then be judged like a workload.
func TestRunRefusesMalformedSandboxImageConfig(t *testing.T) {
	err := Run(context.Background(), Config{
		ConfigPath: filepath.Join(t.TempDir(), "none.yaml"), ConfigOptional: true,
		SandboxImageConfigs: []string{"registry.k8s.io/pause:3.10"},
		Log:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "--sandbox-image-config") || !strings.Contains(err.Error(), "crictl inspecti") {
		t.Fatalf("err = %v, want a refusal naming the flag and how to find the digest", err)
	}
}
