// Package cli wires the nri-csig subcommands: flags and wiring only, no logic.
package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// One package, three binaries, chosen by build tags, because a Go process's
// resident memory is mostly the pages of its binary that it touches:
//   - nri-csig (no tag): every command;
//   - nri-csigd (-tags nodeonly): the node daemon's commands only (run,
//     check-config, version), without the operator commands' KMS and ACR
//     SDKs, kritis import and notation signing (operator_commands.go);
//   - nri-csig-cli (-tags nodaemon): the operator commands without the
//     daemon's (daemon_commands.go: containerd, NRI, Prometheus) and without
//     the certificate verifiers and notation signing (certwitness.go), which
//     it runs from nri-csig when a command needs them.
var (
	daemonCommands   []func() *cobra.Command
	operatorCommands []func() *cobra.Command
	// childCommands are the hidden commands another binary runs
	// (cert_verifier.go, in nri-csig only).
	childCommands []func() *cobra.Command
	preInstalled  = func() bool { return false }
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
	for _, c := range operatorCommands {
		root.AddCommand(c())
	}
	for _, c := range childCommands {
		root.AddCommand(c())
	}
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

// usageError makes err exit with code 2.
func usageError(err error) error { return &exitError{code: 2, err: err} }

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
