//go:build !nodaemon

package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/daemon"
)

func newCheckConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "Check a node config file exactly as the daemon's start does, without running it",
		Long: `Check a node config file with the very checks "nri-csig run" runs at start and on
SIGHUP (strictly: unknown fields, duplicate namespaces, malformed digests and cluster
names are errors naming the line; paths must be absolute; the bundle-signing key file is
read and must be a PEM public key, RSA of at least 2048 bits or EC P-256; bundle
references are parsed), and exit 1 when it is refused. It connects to nothing. A config
it accepts starts the daemon. Run it before putting a file in place: a daemon that
restarts with a refused config refuses to start, and then containerd refuses every
container. The Kubernetes DaemonSet (packaging/kubernetes/) runs it before it installs
a config.`,
		Example: `  nri-csig check-config /etc/nri-csig/config.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := daemon.CheckConfig(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (cluster %q, %d namespaces with an allow list)\n", args[0], c.Cluster, len(c.Allowlists))
			return nil
		},
	}
}
