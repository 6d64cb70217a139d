//go:build !nodeonly && !nodaemon

package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/certchild"
	"github.com/nri-csig/nri-csig/pkg/witnessverify"
)

// The certificate witnesses' verifier process of nri-csigd, which leaves
// notation-go and sigstore-go out (pkg/certchild).
func init() {
	childCommands = append(childCommands, newCertVerifierCmd)
}

func newCertVerifierCmd() *cobra.Command {
	return &cobra.Command{
		Use:    certchild.Command,
		Short:  "Verify certificate witnesses' signatures for nri-csigd (run by nri-csigd on its stdin and stdout, not by hand)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return certchild.Serve(os.Stdin, os.Stdout, witnessverify.InProcess, certchild.ServerIdle)
		},
	}
}
