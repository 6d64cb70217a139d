//go:build nodeonly

package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// operatorCommandNames are the commands nri-csigd leaves out
// (operator_commands.go lists them).
var operatorCommandNames = []string{"sign", "verify", "witness", "policy", "bundle", "exemption", "revocation",
	"public-key", "generate-key", "import", "acr-credential-provider"}

// In nri-csigd, the operator's commands say where they are.
func init() {
	for _, name := range operatorCommandNames {
		operatorCommands = append(operatorCommands, func() *cobra.Command {
			return &cobra.Command{
				Use:                name,
				Short:              "Not in this binary: use nri-csig " + name,
				Hidden:             true,
				DisableFlagParsing: true,
				RunE: func(*cobra.Command, []string) error {
					return usageError(fmt.Errorf("%s is not a command of nri-csigd, the node daemon's binary (run, check-config, version): run \"nri-csig %s\" or \"nri-csig-cli %s\"", name, name, name))
				},
			}
		})
	}
}
