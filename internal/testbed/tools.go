// Package testbed brings up real parts for the integration tests and the demo:
// containerd (built from the version pinned in go.mod) with NRI enabled, runc
// from Debian, crictl, an OCI registry on loopback and small images built from
// Debian's busybox-static. Everything it starts, it stops.
package testbed

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nri-csig/nri-csig/internal/toolcache"
)

// CrictlVersion is the cri-tools release the tests drive the CRI with.
const CrictlVersion = "v1.37.0"

// Tools are the binaries the testbed runs.
type Tools struct {
	BinDir     string // containerd, ctr, containerd-shim-runc-v2, crictl (the shared tool cache)
	Containerd string
	Ctr        string
	Crictl     string
	Runc       string
	Busybox    string
	Pause      string // the sandbox process, a static binary
	NRICsig    string // this project's binary with every command, built from the work tree
	NRICsigd   string // the node daemon's build of it (-tags nodeonly), which runs the daemon
}

// EnsureTools installs runc and busybox-static from Debian when they are
// missing, and builds containerd, crictl, the pause binary and nri-csig.
func EnsureTools() (*Tools, error) {
	if err := ensureDebianPackages(map[string]string{"runc": "runc", "busybox-static": "/bin/busybox"}); err != nil {
		return nil, err
	}
	ctrdVersion, err := toolcache.ModuleVersion("github.com/containerd/containerd/v2")
	if err != nil {
		return nil, err
	}
	bin, err := toolcache.Ensure(toolcache.Tool{
		Packages: []string{
			"github.com/containerd/containerd/v2/cmd/containerd",
			"github.com/containerd/containerd/v2/cmd/ctr",
			"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
		},
		Version: ctrdVersion,
	})
	if err != nil {
		return nil, err
	}
	if _, err := toolcache.Ensure(toolcache.Tool{Packages: []string{"sigs.k8s.io/cri-tools/cmd/crictl"}, Version: CrictlVersion}); err != nil {
		return nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, err
	}
	t := &Tools{
		BinDir:     bin,
		Containerd: filepath.Join(bin, "containerd"),
		Ctr:        filepath.Join(bin, "ctr"),
		Crictl:     filepath.Join(bin, "crictl"),
		Runc:       runc,
		Busybox:    "/bin/busybox",
	}
	// Our own binaries go into this work tree's bin/, not the shared tool
	// cache: two checkouts sharing one cache must not test each other's code.
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	own := filepath.Join(root, "bin", "testbed")
	t.Pause, t.NRICsig, t.NRICsigd = filepath.Join(own, "pause"), filepath.Join(own, "nri-csig"), filepath.Join(own, "nri-csigd")
	// Our own code is rebuilt every time (Go's build cache makes that cheap).
	if err := goBuild(t.Pause, "./internal/testbed/pause"); err != nil {
		return nil, err
	}
	if err := goBuild(t.NRICsig, "./cmd/nri-csig"); err != nil {
		return nil, err
	}
	// The daemon runs from its own build, as on a node (nri-csig.service).
	if err := goBuildTags(t.NRICsigd, "./cmd/nri-csig", "nodeonly"); err != nil {
		return nil, err
	}
	return t, nil
}

func goBuild(out, pkg string) error { return goBuildTags(out, pkg, "") }

// BuildCLI builds nri-csig-cli (./cmd/nri-csig tagged nodaemon: every
// command but the daemon's) next to NRICsig and returns its path.
func (t *Tools) BuildCLI() (string, error) {
	out := filepath.Join(filepath.Dir(t.NRICsig), "nri-csig-cli")
	return out, goBuildTags(out, "./cmd/nri-csig", "nodaemon")
}

func goBuildTags(out, pkg, tags string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args, env := []string{"build", "-o", out}, "CGO_ENABLED=0"
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if os.Getenv("NRI_CSIG_RACE") != "" && pkg == "./cmd/nri-csig" && tags == "nodeonly" {
		// NRI_CSIG_RACE=1 make integration: the daemon under the race detector
		// (reports land in its .stderr file next to its log).
		args, env = append(args, "-race"), "CGO_ENABLED=1"
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(string(bytes.TrimSpace(out))), nil
}

// EnsureDebianPackages apt-installs each package (key) whose command or
// absolute file (value) is missing.
func EnsureDebianPackages(want map[string]string) error { return ensureDebianPackages(want) }

// ensureDebianPackages apt-installs each package whose command or file is missing.
func ensureDebianPackages(want map[string]string) error {
	var missing []string
	for pkg, probe := range want {
		if filepath.IsAbs(probe) {
			if _, err := os.Stat(probe); err == nil {
				continue
			}
		} else if _, err := exec.LookPath(probe); err == nil {
			continue
		}
		missing = append(missing, pkg)
	}
	if len(missing) == 0 {
		return nil
	}
	start := time.Now()
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v\n%s", err, out)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %v: %v\n%s", missing, err, out)
	}
	fmt.Fprintf(os.Stderr, "testbed: installed %v from Debian in %s\n", missing, time.Since(start).Round(time.Second))
	return nil
}

// WithContainerd returns a copy of t whose containerd is another release,
// built into its own cache folder (for tests against older runtimes).
func WithContainerd(t *Tools, version string) (*Tools, error) {
	bin, err := toolcache.Ensure(toolcache.Tool{
		Packages: []string{"github.com/containerd/containerd/v2/cmd/containerd"},
		Version:  version,
		Subdir:   "containerd-" + version,
	})
	if err != nil {
		return nil, err
	}
	old := *t
	old.Containerd = filepath.Join(bin, "containerd")
	return &old, nil
}
