//go:build !nodeonly

package cli

import "github.com/spf13/cobra"

// The operator's commands: everything but the node daemon's. Builds tagged
// nodeonly (nri-csigd, the node daemon's binary) leave them out, and with
// them the KMS and ACR SDKs, kritis import and notation signing.
func init() {
	operatorCommands = []func() *cobra.Command{
		newSignCmd,
		newVerifyCmd,
		newWitnessCmd,
		newPolicyCmd,
		newBundleCmd,
		newExemptionCmd,
		newRevocationCmd,
		newPublicKeyCmd,
		newGenerateKeyCmd,
		newImportCmd,
		newACRCredentialProviderCmd,
	}
}
