//go:build !nodeonly && !nodaemon

package cli

// The certificate witnesses' code (notation-go's and sigstore-go's
// verifiers, notation signing) that nri-csig-cli leaves out: there,
// certwitness_absent.go runs these commands from the full nri-csig.

import (
	"errors"
	"fmt"
	"os"

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

// trust reads the files and checks the trust as the bundle parser does.
func (f *x509Flags) trust() (*policy.X509Trust, error) {
	if f.ca == "" {
		return nil, errors.New(`kind x509 needs --ca: the PEM file of the CA certificates that issue the signing certificates`)
	}
	if len(f.identities) == 0 {
		return nil, errors.New(`kind x509 needs --trusted-identity: the signing certificates' subject ("x509.subject: C=..., ST=..., O=..., CN=...") or "*"`)
	}
	ca, err := readPEMFile("--ca", f.ca)
	if err != nil {
		return nil, err
	}
	var tsa []byte
	if f.tsa != "" {
		if tsa, err = readPEMFile("--tsa", f.tsa); err != nil {
			return nil, err
		}
	}
	return policy.NewX509Trust(ca, tsa, f.identities, f.verifyTimestamp)
}

// maxPEMFile bounds a certificate file read.
const maxPEMFile = 1 << 20

func readPEMFile(flag, path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if st.Size() > maxPEMFile {
		return nil, fmt.Errorf("%s %s: %d bytes, more than the %d a certificate file may have", flag, path, st.Size(), maxPEMFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}
