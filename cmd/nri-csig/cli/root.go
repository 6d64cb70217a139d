// Package cli wires the nri-csig subcommands: flags and wiring only, no logic.
package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// The node daemon's commands (run, check-config) and what tells a
// pre-installed plugin apart are in daemon_commands.go, left out of builds
// tagged nodaemon (nri-csig-cli): they link containerd, NRI, gRPC and
// Prometheus, whose package initialization the other commands would pay in
// memory at every start.
var (
	daemonCommands []func() *cobra.Command
	preInstalled   = func() bool { return false }
)

// Args returns the command line to execute. containerd launches a
// pre-installed plugin (a file named like 50-nri-csig in its plugin_path)
// without arguments: that means "run".
func Args(argv []string) []string {
	if len(argv) == 0 && preInstalled() {
		return []string{"run"}
	}
	return argv
}

// New returns the root command with every subcommand attached.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "nri-csig",
		Short: "Node-level container image signature enforcement for containerd",
		Long: `nri-csig refuses containers whose image digest is not trusted on this node.

It runs on every node as an NRI plugin of containerd ("nri-csig run"), judges the
exact image digest the node will run against the security policies in force and the
signatures of their witnesses, and refuses the container when it is not trusted --
also when the container never went through the Kubernetes API server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())
	for _, c := range daemonCommands {
		root.AddCommand(c())
	}
	root.AddCommand(
		newSignCmd(),
		newVerifyCmd(),
		newWitnessCmd(),
		newPolicyCmd(),
		newBundleCmd(),
		newExemptionCmd(),
		newRevocationCmd(),
		newPublicKeyCmd(),
		newGenerateKeyCmd(),
		newImportCmd(),
		newACRCredentialProviderCmd(),
	)
	return root
}

// exitError carries a specific exit code through cobra (e.g. "verify" exits 1
// when an image is not verified, 2 on usage or operational errors).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
