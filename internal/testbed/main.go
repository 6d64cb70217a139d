package testbed

import (
	"fmt"
	"os"
	"testing"
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
