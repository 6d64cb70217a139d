package cli

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/version"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/notarysign"
	"github.com/nri-csig/nri-csig/pkg/policy"
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

// sign makes and attaches a Notary Project signature of image.
func (f *notationSignFlags) sign(cmd *cobra.Command, signer keys.Signer, image name.Digest, what string, opts ...remote.Option) error {
	ctx := cmd.Context()
	pemBytes, err := readPEMFile("--certificate-chain", f.certChain)
	if err != nil {
		return err
	}
	chain, err := policy.ParseCertificateChainPEM(pemBytes)
	if err != nil {
		return fmt.Errorf("--certificate-chain %s: %w", f.certChain, err)
	}
	head, err := remote.Head(image, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", image, err)
	}
	desc := ocispec.Descriptor{MediaType: string(head.MediaType), Digest: digest.Digest(head.Digest.String()), Size: head.Size}
	env, err := notarysign.Sign(ctx, signer, chain, desc, "nri-csig/"+version.String())
	if err != nil {
		return err
	}
	ref, err := notarysign.Attach(ctx, image, *head, env, chain, opts...)
	if err != nil {
		return err
	}
	info := signer.Info()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Signed %s %s (Notary Project signature)\n", what, image.DigestStr())
	fmt.Fprintf(out, "  image:       %s\n", image)
	fmt.Fprintf(out, "  certificate: %s (issued by %s)\n", chain[0].Subject, chain[0].Issuer)
	fmt.Fprintf(out, "  key:         %s %s %s\n", info.Provider, info.KeySpec, info.Algorithm)
	if info.KeyVersionID != "" {
		fmt.Fprintf(out, "  version:     %s of %s\n", info.KeyVersionID, info.KeyID)
	}
	fmt.Fprintf(out, "  stored in:   %s\n", ref)
	return nil
}
