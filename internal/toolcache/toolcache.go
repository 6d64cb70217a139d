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
	// Module, when set, is the module that holds Packages. The tool is then
	// built inside a scratch module that requires Module at exactly Version,
	// for modules whose proxy hides the version list so that
	// "go install pkg@version" is refused (notation).
	Module string
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
	start := time.Now()
	if t.Module != "" {
		err = buildInScratchModule(t, bin)
	} else {
		args := []string{"install"}
		for _, p := range t.Packages {
			args = append(args, p+"@"+t.Version)
		}
		err = goCommand("", append(t.Env, "GOBIN="+bin), args...)
	}
	if err != nil {
		return "", fmt.Errorf("building %s@%s: %w", t.Packages[0], t.Version, err)
	}
	fmt.Fprintf(os.Stderr, "toolcache: built %s@%s in %s\n", strings.Join(t.Packages, ","), t.Version, time.Since(start).Round(time.Second))
	if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err != nil {
		return "", err
	}
	return bin, os.WriteFile(stamp, []byte(t.Version+"\n"), 0o644)
}

// buildInScratchModule builds t's packages from a temporary module whose
// go.mod requires t.Module at exactly t.Version: "go get" of an exact version
// works where the proxy hides the version list.
func buildInScratchModule(t Tool, bin string) error {
	scratch, err := os.MkdirTemp("", "toolcache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	gomod := "module toolcache.local/build\n\ngo 1.23\n"
	if err := os.WriteFile(filepath.Join(scratch, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	get := []string{"get"}
	for _, p := range t.Packages {
		get = append(get, p+"@"+t.Version)
	}
	if err := goCommand(scratch, t.Env, get...); err != nil {
		return err
	}
	return goCommand(scratch, append(t.Env, "GOBIN="+bin), append([]string{"install"}, t.Packages...)...)
}

// goCommand runs the go tool in dir (the current folder when empty), with env
// added to the environment, and returns its output in the error.
func goCommand(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-buildvcs=false"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
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
