//go:build !nodeonly && !nodaemon

package cli

// The certificate witnesses' code (notation-go's and sigstore-go's
// verifiers, notation signing) that nri-csig-cli leaves out: there,
// certwitness_absent.go runs these commands from the full nri-csig.

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/version"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/notarysign"
	"github.com/nri-csig/nri-csig/pkg/notaryverify"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
	"github.com/nri-csig/nri-csig/pkg/witnessverify"
)

// needCertWitnesses: this binary has the certificate witnesses' code.
func needCertWitnesses(string) error { return nil }

// verifyKey is the verify.Key of the trust the flags describe; compiling it
// runs notation's own checks of the trust policy.
func (f *x509Flags) verifyKey() (verify.Key, *policy.X509Trust, error) {
	t, err := f.trust()
	if err != nil {
		return verify.Key{}, nil, err
	}
	v, err := notaryverify.New(t)
	if err != nil {
		return verify.Key{}, nil, err
	}
	return verify.Key{Name: t.ID(), Cert: v}, t, nil
}

// key is the verify.Key of the identity the flags describe, for verify:
// the node's verifier for a witness of kind sigstore.
func (f *sigstoreFlags) key() (verify.Key, error) {
	w, err := f.witness("cli", "")
	if err != nil {
		return verify.Key{}, err
	}
	k, err := witnessverify.For(w.Keys[0])
	if err != nil {
		return verify.Key{}, err
	}
	f.fingerprint = k.Name
	id := w.Sigstore.Identities[0]
	k.Name = "sigstore " + id.Issuer + id.IssuerRegExp + " " + id.Subject + id.SubjectRegExp
	return k, nil
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
