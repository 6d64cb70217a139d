//go:build nodaemon

package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// In nri-csig-cli, run and check-config say where they are.
func init() {
	for _, name := range []string{"run", "check-config"} {
		daemonCommands = append(daemonCommands, func() *cobra.Command {
			return &cobra.Command{
				Use:                name,
				Short:              "Not in this binary: use nri-csig " + name,
				Hidden:             true,
				DisableFlagParsing: true,
				RunE: func(*cobra.Command, []string) error {
					return usageError(fmt.Errorf("%s is a command of the node daemon: run \"nri-csigd %s\" (or \"nri-csig %s\"; this binary, nri-csig-cli, holds the other commands without the daemon)", name, name, name))
				},
			}
		})
	}
}
