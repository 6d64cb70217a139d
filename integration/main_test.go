//go:build integration

// Package integration runs nri-csig against a real containerd (built from the
// version in go.mod) with NRI, real runc and crictl, and a registry on
// loopback. It needs root. Run it with "make integration" (or make test).
package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

const (
	enforcedNS  = "csig-enforced" // has an allow list naming the trusted digest
	uncoveredNS = "csig-free"     // no allow list, no policy
)

var (
	env        *testbed.Env
	daemon     *testbed.Daemon
	nodeConfig string // the node config file the daemon runs with
)

func TestMain(m *testing.M) { testbed.Main(m, "node", run) }

func run(m *testing.M) (int, error) {
	start := time.Now()
	var err error
	env, err = testbed.Setup(true)
	if err != nil {
		return 0, err
	}
	defer env.Close()
	fmt.Fprintf(os.Stderr, "testbed ready in %s (tools %s, images %s, containerd %s, pulls %s)\n  %s\n",
		time.Since(start).Round(time.Millisecond), env.Timings["tools"].Round(time.Millisecond), env.Timings["images"].Round(time.Millisecond),
		env.Timings["containerd"].Round(time.Millisecond), env.Timings["pull"].Round(time.Millisecond), env.Describe())

	nodeConfig = filepath.Join(env.Containerd.Dir, "node.yaml")
	if err := os.WriteFile(nodeConfig, []byte(fmt.Sprintf(`apiVersion: nri-csig.io/v1alpha1
kind: NodeConfig
cluster: it
allowlists:
  - namespace: %s
    digests:
      - %s
`, enforcedNS, env.Trusted.Digest)), 0o644); err != nil {
		return 0, err
	}
	daemon, err = env.Containerd.StartDaemon(nodeConfig)
	if err != nil {
		return 0, err
	}
	code := m.Run()
	daemon.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "containerd log tail:\n%s\n", env.Containerd.LogTail(40))
	}
	return code, nil
}
