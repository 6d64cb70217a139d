//go:build !nodeonly

package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// x509Flags are the flags that describe the trust of a witness of kind
// x509 (Notary Project signatures), shared by "witness create --kind x509"
// and "verify".
type x509Flags struct {
	ca, tsa         string
	identities      []string
	verifyTimestamp string
}

const x509FlagsHelp = `
Kind x509 trusts Notary Project (notation) signatures: --ca is a PEM file of the
trust store's certificates (CA certificates, or self-signed signing certificates
such as "notation cert generate-test" makes), and each --trusted-identity is a
notation trusted identity, "x509.subject: C=..., ST=..., O=...[, CN=...]" (the
signing certificate's subject must include those attributes) or "*" (any
certificate the CAs issued). --tsa adds RFC 3161 timestamping root CAs; a
signature must then carry a timestamp from them (--verify-timestamp
afterCertExpiry: only once the signing certificate has expired). Revocation
(OCSP, CRL) is not checked: the node decides offline.
`

func (f *x509Flags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.ca, "ca", "", "kind x509: PEM file of the trust store's CA certificates")
	fl.StringVar(&f.tsa, "tsa", "", "kind x509: PEM file of timestamping authorities' root CA certificates (optional)")
	fl.StringArrayVar(&f.identities, "trusted-identity", nil, `kind x509: notation trusted identity, "x509.subject: C=..., ST=..., O=..., CN=..." or "*" (repeatable)`)
	fl.StringVar(&f.verifyTimestamp, "verify-timestamp", "", "kind x509 with --tsa: always (default) or afterCertExpiry")
	_ = cmd.MarkFlagFilename("ca", "pem", "crt")
	_ = cmd.MarkFlagFilename("tsa", "pem", "crt")
}

// set reports whether any x509 flag was given.
func (f *x509Flags) set() bool {
	return f.ca != "" || f.tsa != "" || len(f.identities) > 0 || f.verifyTimestamp != ""
}

// certSubjects lists the subjects of a trust store's certificates, for
// messages.
func certSubjects(t *policy.X509Trust) string {
	s := make([]string, len(t.CACertificates))
	for i, c := range t.CACertificates {
		s[i] = c.Subject.String()
	}
	return strings.Join(s, "; ")
}

func newWitnessSetTrustCmd(file *bundleFile) *cobra.Command {
	var xf x509Flags
	cmd := &cobra.Command{
		Use:   "set-trust NAME --ca FILE --trusted-identity ID... [--tsa FILE]",
		Short: "Replace the trust store and identities of a witness of kind x509 (CA rotation)",
		Long: `Replace the trust of a witness of kind x509: its CA certificates, TSA
certificates and trusted identities, all at once, while the policies that name
the witness stay as they are. To rotate a CA, first give both the old and the
new CA certificates in the --ca file, publish the bundle, move the signers to
the new CA, then give the new one only.
` + x509FlagsHelp,
		Example: `  cat old-ca.pem new-ca.pem > both.pem
  nri-csig witness set-trust notary --ca both.pem --trusted-identity "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=release"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needCertWitnesses("witness set-trust"); err != nil {
				return err
			}
			_, t, err := xf.verifyKey()
			if err != nil {
				return err
			}
			b, err := file.load()
			if err != nil {
				return err
			}
			if err := b.SetX509Trust(args[0], t); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "witness %q now trusts %s: CA %s; identities %s\n",
				args[0], t.ID(), certSubjects(t), strings.Join(t.TrustedIdentities, ", "))
			return nil
		},
	}
	xf.addFlags(cmd)
	return cmd
}
