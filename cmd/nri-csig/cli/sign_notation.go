//go:build !nodeonly

package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// notationSignFlags make "nri-csig sign" write a Notary Project signature
// instead of cosign's: the key signs, the certificate chain names it.
type notationSignFlags struct {
	format    string
	certChain string
}

func (f *notationSignFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.format, "format", "cosign", `signature format: cosign, or notation (a Notary Project signature, for witnesses of kind x509; needs --certificate-chain)`)
	cmd.Flags().StringVar(&f.certChain, "certificate-chain", "", "--format notation: PEM file of the signing certificate (whose public key is --key's) then its issuers")
	_ = cmd.MarkFlagFilename("certificate-chain", "pem", "crt")
}

func (f *notationSignFlags) on() bool { return f.format == "notation" }

// check refuses flag combinations the notation format does not take.
func (f *notationSignFlags) check(fromFile, annotations bool) error {
	switch f.format {
	case "cosign":
		if f.certChain != "" {
			return errors.New("--certificate-chain is for --format notation")
		}
		return nil
	case "notation":
	default:
		return fmt.Errorf("--format %q: use cosign or notation", f.format)
	}
	switch {
	case f.certChain == "":
		return errors.New("--format notation needs --certificate-chain: the PEM file of the signing certificate (issued for --key's public key) and its issuers")
	case fromFile:
		return errors.New("--format notation signs one IMAGE; --from-file writes cosign signatures only")
	case annotations:
		return errors.New("--annotation is for cosign signatures; a Notary Project signature has no payload annotations here")
	}
	return nil
}
