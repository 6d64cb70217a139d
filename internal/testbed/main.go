package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Main is the TestMain of an integration package: it refuses to run without
// root (containerd and runc need it), runs setup-and-tests, and exits with
// the tests' status, or 1 with what failed when the setup did.
func Main(m *testing.M, pkg string, run func(*testing.M) (int, error)) {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "%s integration tests need root (they run containerd and runc)\n", pkg)
		os.Exit(1)
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s integration setup: %v\n", pkg, err)
		os.Exit(1)
	}
	os.Exit(code)
}

// RunTests runs the package's tests while d serves, then stops d; when a
// test failed it prints the last lines of d's log, which say why.
func (d *Daemon) RunTests(m *testing.M, lines int) int {
	code := m.Run()
	d.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "daemon log tail:\n%s\n", tail(d.LogPath, lines))
	}
	return code
}

// RunCLI runs the nri-csig binary bin with args, the environment plus env,
// within two minutes, and returns its combined output; an error carries it.
func RunCLI(bin string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("nri-csig %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}
