//go:build nodeonly

package cli

import "fmt"

// operatorCommandNames are the commands nri-csigd leaves out
// (operator_commands.go lists them).
var operatorCommandNames = []string{"sign", "verify", "witness", "policy", "bundle", "exemption", "revocation",
	"public-key", "generate-key", "import", "acr-credential-provider"}

// In nri-csigd, the operator's commands say where they are.
func init() {
	for _, name := range operatorCommandNames {
		operatorCommands = append(operatorCommands, absentCommand(name, "nri-csig", fmt.Errorf(
			"%s is not a command of nri-csigd, the node daemon's binary (run, check-config, version): run \"nri-csig %s\" or \"nri-csig-cli %s\"", name, name, name)))
	}
}
