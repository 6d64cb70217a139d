//go:build nodaemon

package cli

import "fmt"

// In nri-csig-cli, run and check-config say where they are.
func init() {
	for _, name := range []string{"run", "check-config"} {
		daemonCommands = append(daemonCommands, absentCommand(name, "nri-csig", fmt.Errorf(
			"%s is a command of the node daemon: run \"nri-csigd %s\" (or \"nri-csig %s\"; this binary, nri-csig-cli, holds the other commands without the daemon)", name, name, name)))
	}
}
