//go:build !nodeonly

package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

func newGenerateKeyCmd() *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "generate-key",
		Short: "Create a local RSA-2048 key pair for development",
		Long: `Create a local RSA-2048 key pair: PREFIX.key (unencrypted PKCS#8 PEM, mode 0600) and
PREFIX.pub (PEM public key). It never overwrites existing files.

Local keys are for development and tests. Production images are signed with a KMS key
whose private half never leaves KMS:
  aliyun kms CreateKey --KeySpec RSA_2048 --KeyUsage SIGN/VERIFY
then sign with --key alikms://REGION/KEY-ID.`,
		Example: `  nri-csig generate-key
  nri-csig generate-key --output-key-prefix /tmp/dev-witness`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			privPath, pubPath, err := local.Generate(prefix)
			if err != nil {
				return err
			}
			pub, err := keyref.OpenPublic(cmd.Context(), pubPath, keyref.Options{})
			if err != nil {
				return err
			}
			fp, err := keys.Fingerprint(pub)
			if err != nil {
				return err
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "Private key written to %s\n", privPath)
			fmt.Fprintf(w, "Public key written to %s\n", pubPath)
			fmt.Fprintf(w, "Fingerprint %s\n", fp)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "nri-csig", "write the pair to PREFIX.key and PREFIX.pub")
	return cmd
}
