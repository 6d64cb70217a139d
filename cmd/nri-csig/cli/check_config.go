package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

func newCheckConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "Check a node config file the way the daemon reads it, without running it",
		Long: `Check a node config file the way "nri-csig run" reads it (strictly: unknown fields,
duplicate namespaces and malformed digests are errors naming the line), and exit 1 when
it is refused. Run it before putting a file in place: a daemon that restarts with a
malformed config refuses to start, and then containerd refuses every container.
The Kubernetes DaemonSet (packaging/kubernetes/) runs it before it installs a config.`,
		Example: `  nri-csig check-config /etc/nri-csig/config.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := nodeconfig.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (cluster %q, %d namespaces with an allow list)\n", args[0], c.Cluster, len(c.Allowlists))
			return nil
		},
	}
}
