// Package toolcache builds the third-party programs the tests drive (containerd,
// crictl, cosign, ...) from their Go modules into one cache folder, once.
//
// The folder is $NRI_CSIG_CACHE (the Makefile sets it to .cache/ in the work
// tree) or, when unset, .cache/ at the module root. Each tool is rebuilt only
// when its pinned version changes, and a file lock keeps concurrent test
// packages from building the same tool twice.
package toolcache

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Tool is one program to build with "go install".
type Tool struct {
	// Packages are the main packages, without version (one go install builds them all).
	Packages []string
	// Version is the module version, e.g. "v2.4.2".
	Version string
	// Env is added to the build environment (e.g. CGO_ENABLED=0).
	Env []string
	// Subdir keeps this build apart from the default bin folder, for a second
	// version of a tool (e.g. an old containerd): cache/<Subdir>/bin.
	Subdir string
}

// Dir returns the cache folder, creating it.
func Dir() (string, error) {
	dir := os.Getenv("NRI_CSIG_CACHE")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache")
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// Ensure builds t unless the cache already holds that version, and returns the
// path of the cache's bin folder, where the binaries are named after their packages.
func Ensure(t Tool) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin")
	stamp := filepath.Join(dir, "stamps", stampName(t))
	if t.Subdir != "" {
		bin = filepath.Join(dir, t.Subdir, "bin")
		stamp = filepath.Join(dir, t.Subdir, "stamps", stampName(t))
	}
	unlock, err := lock(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	if up := upToDate(t, bin, stamp); up {
		return bin, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	args := []string{"install"}
	for _, p := range t.Packages {
		args = append(args, p+"@"+t.Version)
	}
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-buildvcs=false"), t.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: go %s: %v\n%s", t.Packages[0], strings.Join(args, " "), err, out.String())
	}
	fmt.Fprintf(os.Stderr, "toolcache: built %s@%s in %s\n", strings.Join(t.Packages, ","), t.Version, time.Since(start).Round(time.Second))
	if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err != nil {
		return "", err
	}
	return bin, os.WriteFile(stamp, []byte(t.Version+"\n"), 0o644)
}

func stampName(t Tool) string {
	return strings.NewReplacer("/", "_", "@", "_").Replace(t.Packages[0])
}

func upToDate(t Tool, bin, stamp string) bool {
	b, err := os.ReadFile(stamp)
	if err != nil || strings.TrimSpace(string(b)) != t.Version {
		return false
	}
	for _, p := range t.Packages {
		if _, err := os.Stat(filepath.Join(bin, filepath.Base(p))); err != nil {
			return false
		}
	}
	return true
}

func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// ModuleVersion returns the version of a module as pinned in this project's go.mod
// (so the tests run the containerd the code is built against).
func ModuleVersion(module string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the nri-csig module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}
