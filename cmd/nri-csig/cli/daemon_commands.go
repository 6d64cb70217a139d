//go:build !nodaemon

package cli

import (
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/plugin"
)

func init() {
	daemonCommands = []func() *cobra.Command{newRunCmd, newCheckConfigCmd}
	preInstalled = plugin.PreInstalled
}
