//go:build !nodeonly

package cli

import (
	"crypto"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
)

func newPublicKeyCmd() *cobra.Command {
	var (
		ko          keyOptions
		outfile     string
		fingerprint bool
	)
	cmd := &cobra.Command{
		Use:   "public-key --key REF",
		Short: "Print the public key (PEM) of a local or KMS key, and its fingerprint",
		Long: `Print the public key of --key as PEM ("-----BEGIN PUBLIC KEY-----", PKIX), the form
"cosign verify --key" and witnesses take. The fingerprint (sha256 of the DER public key)
and a description of the key go to stderr; --fingerprint prints only the fingerprint.
` + keyFlagsHelp,
		Example: `  nri-csig public-key --key nri-csig.key > nri-csig.pub
  nri-csig public-key --key alikms://cn-hangzhou/alias/image-signing --outfile witness.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var (
				pub  crypto.PublicKey
				desc = ko.Key
				err  error
			)
			if strings.HasPrefix(ko.Key, alikms.Scheme+"://") {
				// Open, not OpenPublic: witnesses need the resolved key id and version.
				s, err := ko.Open(ctx)
				if err != nil {
					return err
				}
				if pub, err = s.PublicKey(ctx); err != nil {
					return err
				}
				info := s.Info()
				desc = fmt.Sprintf("%s (region %s, key %s, version %s, %s)", ko.Key, info.Region, info.KeyID, info.KeyVersionID, info.Algorithm)
			} else if pub, err = ko.OpenPublic(ctx); err != nil {
				return err
			}
			fp, err := keys.Fingerprint(pub)
			if err != nil {
				return err
			}
			spec, err := keys.KeySpec(pub)
			if err != nil {
				return err
			}
			if fingerprint {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), fp)
				return err
			}
			pemBytes, err := keys.MarshalPublicKeyPEM(pub)
			if err != nil {
				return err
			}
			if outfile != "" {
				if err := os.WriteFile(outfile, pemBytes, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Public key written to %s\n", outfile)
			} else if _, err := cmd.OutOrStdout().Write(pemBytes); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %s %s\n", fp, spec, desc)
			return nil
		},
	}
	ko.AddFlags(cmd)
	cmd.Flags().StringVar(&outfile, "outfile", "", "write the PEM to this file instead of stdout")
	cmd.Flags().BoolVar(&fingerprint, "fingerprint", false, "print only the fingerprint (sha256:<hex>) to stdout")
	return cmd
}
