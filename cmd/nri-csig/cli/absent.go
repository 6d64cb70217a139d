//go:build nodaemon || nodeonly

package cli

import "github.com/spf13/cobra"

// absentCommand stands in, hidden, for a command this build leaves out: it
// refuses with err, which says which binary has it.
func absentCommand(name, elsewhere string, err error) func() *cobra.Command {
	return func() *cobra.Command {
		return &cobra.Command{
			Use:                name,
			Short:              "Not in this binary: use " + elsewhere + " " + name,
			Hidden:             true,
			DisableFlagParsing: true,
			RunE:               func(*cobra.Command, []string) error { return usageError(err) },
		}
	}
}
