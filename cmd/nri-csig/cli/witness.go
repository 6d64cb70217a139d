//go:build !nodeonly

package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

func newWitnessCmd() *cobra.Command {
	var file bundleFile
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Create, list, show and delete witnesses in a policy bundle file",
		Long: `A witness is a named trust anchor: a description and the public key(s) of a
signing key, usually an asymmetric Alibaba Cloud KMS key (SIGN/VERIFY, RSA_2048),
or, for a witness of kind x509, a trust store of CA certificates and trusted
identities that Notary Project (notation) signatures are verified against.
Security policies name the witnesses that must have signed an image digest.

The bundle stores only public keys and their fingerprints, so nodes verify offline
and never need KMS credentials. Every edit raises the bundle's serial and drops the
now stale signature file: run "nri-csig bundle sign" before publishing.`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newWitnessCreateCmd(&file), newWitnessAddKeyCmd(&file), newWitnessRemoveKeyCmd(&file), newWitnessSetTrustCmd(&file), newWitnessListCmd(&file), newWitnessShowCmd(&file), newWitnessDeleteCmd(&file))
	return cmd
}

func newWitnessCreateCmd(file *bundleFile) *cobra.Command {
	var (
		name, desc, kind, sigRepo string
		ko                        keyOptions
		so                        sigstoreFlags
		xf                        x509Flags
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME (--key REF | --kind x509 --ca FILE --trusted-identity ID... | --kind sigstore --trusted-root FILE --issuer ISSUER --subject SAN) [--description TEXT] [--signature-repository REPO]",
		Short: "Add a witness: a public key (KMS or PEM), an x509 trust store (notation), or a keyless Sigstore identity",
		Long: `Add a witness to the bundle file (created if absent).

--key names the signing key; its public half is fetched and stored with its
fingerprint:
  alikms://<region>/<key-id>[?version=<key-version-id>]   Alibaba Cloud KMS key
  ./release.pub                                            PEM public key file
  ./release.key                                            PEM private key file (public half only is stored)

Only asymmetric SIGN/VERIFY keys are accepted (KMS: RSA_2048, RSA_3072 or EC_P256; PEM files:
RSA of 2048 bits or more, or EC P-256); anything else is refused with a message naming
the key to create. To rotate a key: "witness add-key" the new one, sign with it, then
"witness remove-key" the old one (or revoke it, when it must stop counting at once).

--signature-repository REPO (registry.example.com/team/signatures) says that this
witness's signatures are stored in REPO instead of the image's own repository, as
"cosign sign" stores them with COSIGN_REPOSITORY=REPO (same sha256-<hex>.sig tag and
referrers, keyed by the image digest). Nodes look there too; it is a place to look,
not a trust setting: signatures count only when the witness's keys verify them.

--kind sigstore makes a keyless witness instead: images signed by cosign
(keyless) whose Fulcio certificate names the issuer and subject, verified
offline against the trusted root stored in the bundle.
` + x509FlagsHelp + keyFlagsHelp + sigstoreFlagsHelp,
		Example: `  nri-csig witness create --name release --description "release pipeline" \
      --key alikms://cn-hangzhou/key-4a3b...?version=v1
  nri-csig witness create --name dev --key ./dev.pub --bundle ./dev-bundle.yaml
  nri-csig witness create --name ci --key ./ci.pub --signature-repository registry.example.com/team/signatures
  nri-csig witness create --name notary --kind x509 --ca ./release-ca.pem \
      --trusted-identity "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=release"
  nri-csig witness create --name k8s-releng --kind sigstore --trusted-root ./trusted_root.json \
      --issuer https://accounts.google.com --subject krel-trust@k8s-releng-prod.iam.gserviceaccount.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch policy.WitnessKind(kind) {
			case policy.WitnessKeys:
				if so.used() {
					return fmt.Errorf("--trusted-root, --issuer and --subject describe a keyless witness; add --kind sigstore")
				}
				if xf.set() {
					return fmt.Errorf("--ca, --tsa, --trusted-identity and --verify-timestamp are for --kind x509")
				}
			case policy.WitnessX509:
				if ko.Key != "" {
					return fmt.Errorf("a witness of kind x509 trusts certificates, not a key: drop --key, give --ca and --trusted-identity")
				}
				if sigRepo != "" {
					return fmt.Errorf("--signature-repository is for cosign signatures; notation stores its signatures with the image, as referrers")
				}
				return createX509Witness(cmd, file, name, desc, &xf)
			case policy.WitnessSigstore:
				if ko.Key != "" {
					return fmt.Errorf("--key: a witness of kind sigstore has no key; it trusts --trusted-root and an --issuer/--subject identity")
				}
				w, err := so.witness(name, desc)
				if err != nil {
					return err
				}
				w.SignatureRepository = sigRepo
				return addWitness(cmd, file, w, fmt.Sprintf("witness %q created: keyless Sigstore, trust %s", name, w.Keys[0].Fingerprint))
			default:
				return fmt.Errorf("--kind %q: use keys (public keys, the default), x509 (Notary Project certificates) or sigstore (keyless)", kind)
			}
			k, err := witnessKey(cmd.Context(), &ko)
			if err != nil {
				return err
			}
			return addWitness(cmd, file, &policy.Witness{Name: name, Description: desc, Keys: []*policy.Key{k}, SignatureRepository: sigRepo},
				fmt.Sprintf("witness %q created with key %s (%s, %s)", name, k.Fingerprint, k.KeySpec, k.Algorithm))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the witness (letters, digits, '.', '_', '-')")
	cmd.Flags().StringVar(&desc, "description", "", "what this witness attests, for people")
	cmd.Flags().StringVar(&kind, "kind", string(policy.WitnessKeys), "witness kind: keys (public keys, --key), x509 (Notary Project certificates: --ca, --trusted-identity) or sigstore (keyless: --trusted-root, --issuer, --subject)")
	cmd.Flags().StringVar(&sigRepo, "signature-repository", "", "repository holding this witness's signatures instead of the image's (cosign's COSIGN_REPOSITORY), e.g. registry.example.com/team/signatures")
	ko.AddFlags(cmd)
	xf.addFlags(cmd)
	so.addFlags(cmd)
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagFilename("key")
	return cmd
}

// createX509Witness adds a witness of kind x509 whose trust the flags give.
func createX509Witness(cmd *cobra.Command, file *bundleFile, name, desc string, xf *x509Flags) error {
	if err := needCertWitnesses("witness create --kind x509"); err != nil {
		return err
	}
	_, t, err := xf.verifyKey() // the checks the node will make when compiling it
	if err != nil {
		return err
	}
	k := &policy.Key{Kind: policy.WitnessX509, X509: t, Fingerprint: t.ID()}
	return addWitness(cmd, file, &policy.Witness{Name: name, Description: desc, Kind: policy.WitnessX509, X509: t, Keys: []*policy.Key{k}},
		fmt.Sprintf("witness %q created (kind x509, trust %s): CA %s; identities %s",
			name, k.Fingerprint, certSubjects(t), strings.Join(t.TrustedIdentities, ", ")))
}

// addWitness adds w to the bundle file and says so.
func addWitness(cmd *cobra.Command, file *bundleFile, w *policy.Witness, done string) error {
	b, err := file.loadOrNew()
	if err != nil {
		return err
	}
	if err := b.AddWitness(w); err != nil {
		return err
	}
	if err := file.save(cmd, b); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), done)
	return nil
}

// witnessKey reads the public half of the key the flags name, with where it
// came from.
func witnessKey(ctx context.Context, ko *keyOptions) (*policy.Key, error) {
	opts, err := ko.Options()
	if err != nil {
		return nil, err
	}
	alg := opts.Algorithm
	// Local paths mean nothing on other machines: only KMS references are kept.
	k := &policy.Key{Provider: "local"}
	if strings.HasPrefix(ko.Key, alikms.Scheme+"://") {
		// Open, not OpenPublic: the witness records the resolved key id and version.
		s, err := keyref.Open(ctx, ko.Key, opts)
		if err != nil {
			return nil, fmt.Errorf("witness key: %w", err)
		}
		if k.PublicKey, err = s.PublicKey(ctx); err != nil {
			return nil, fmt.Errorf("witness key: %w", err)
		}
		info := s.Info()
		k.Ref = ko.Key
		k.Provider, k.Region, k.KeyID, k.KeyVersionID, alg = info.Provider, info.Region, info.KeyID, info.KeyVersionID, info.Algorithm
	} else {
		pub, err := keyref.OpenPublic(ctx, ko.Key, opts)
		if err != nil {
			return nil, fmt.Errorf("witness key: %w", err)
		}
		k.PublicKey = pub
	}
	pemText, err := policy.EncodePublicKeyPEM(k.PublicKey)
	if err != nil {
		return nil, err
	}
	// Parse what will be written, so the checks are the bundle parser's own.
	pub, spec, err := policy.ParsePublicKeyPEM([]byte(pemText))
	if err != nil {
		return nil, fmt.Errorf("witness key %s: %w", ko.Key, err)
	}
	k.PublicKey, k.PublicKeyPEM, k.KeySpec = pub, pemText, spec
	if k.Fingerprint, err = policy.Fingerprint(pub); err != nil {
		return nil, err
	}
	if alg == "" {
		alg = policy.RSAPKCS1SHA256
		if spec == "EC_P256" {
			alg = policy.ECDSASHA256
		}
	}
	k.Algorithm = alg
	return k, nil
}

func newWitnessAddKeyCmd(file *bundleFile) *cobra.Command {
	var ko keyOptions
	cmd := &cobra.Command{
		Use:   "add-key NAME --key REF",
		Short: "Add another key to a witness (key rotation)",
		Long: `Add another public key to an existing witness. A signature by any one of a
witness's keys satisfies it, so images signed with the old or the new key are both
trusted while the rotation lasts. Revoke the old key's fingerprint with a Revocation
document when it must stop counting.
` + keyFlagsHelp,
		Example: `  nri-csig witness add-key release --key alikms://cn-hangzhou/key-4a3b...?version=v2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := witnessKey(cmd.Context(), &ko)
			if err != nil {
				return err
			}
			b, err := file.load()
			if err != nil {
				return err
			}
			if err := b.AddKey(args[0], k); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s added to witness %q\n", k.Fingerprint, args[0])
			return nil
		},
	}
	ko.AddFlags(cmd)
	return cmd
}

func newWitnessRemoveKeyCmd(file *bundleFile) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-key NAME FINGERPRINT",
		Short: "Remove a key from a witness (the end of a rotation)",
		Long: `Remove a key from a witness once images are signed with its successor. Images
signed only by the removed key stop satisfying the witness when nodes load the new
bundle. A witness keeps at least one key.`,
		Example: `  nri-csig witness remove-key release sha256:2c18cc40...`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := file.load()
			if err != nil {
				return err
			}
			if err := b.RemoveKey(args[0], args[1]); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s removed from witness %q\n", args[1], args[0])
			return nil
		},
	}
}

func newWitnessListCmd(file *bundleFile) *cobra.Command {
	return file.listCmd("List the witnesses and the policies that use them", "NAME\tKEYS\tUSED BY\tDESCRIPTION",
		func(b *policy.Bundle) (rows []string) {
			for _, w := range b.Witnesses {
				rows = append(rows, fmt.Sprintf("%s\t%d\t%s\t%s", w.Name, len(w.Keys), orDash(strings.Join(b.PoliciesUsing(w.Name), ",")), w.Description))
			}
			return rows
		})
}

func newWitnessShowCmd(file *bundleFile) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a witness: its keys, fingerprints and KMS origin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := file.load()
			if err != nil {
				return err
			}
			w := b.Witness(args[0])
			if w == nil {
				return fmt.Errorf("witness %q not found in %s; 'nri-csig witness list' shows the witnesses", args[0], file.path)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Name:         %s\nDescription:  %s\nUsed by:      %s\n", w.Name, orDash(w.Description), orDash(strings.Join(b.PoliciesUsing(w.Name), ", ")))
			fmt.Fprintf(out, "Signatures:   %s\n", signatureLocation(w))
			if w.Kind == policy.WitnessX509 && w.X509 != nil {
				showX509(out, w)
				return nil
			}
			if w.Sigstore != nil {
				printSigstore(out, w)
				return nil
			}
			for i, k := range w.Keys {
				fmt.Fprintf(out, "Key %d:\n  Fingerprint:  %s\n  Spec:         %s\n  Algorithm:    %s\n  Provider:     %s\n", i, k.Fingerprint, k.KeySpec, k.Algorithm, orDash(k.Provider))
				if k.Ref != "" {
					fmt.Fprintf(out, "  Ref:          %s\n", k.Ref)
				}
				if k.KeyID != "" {
					fmt.Fprintf(out, "  KMS:          region %s, key %s, version %s\n", k.Region, k.KeyID, k.KeyVersionID)
				}
				fmt.Fprintf(out, "%s", indent(k.PublicKeyPEM))
			}
			return nil
		},
	}
}

// showX509 prints the trust of a witness of kind x509.
func showX509(out io.Writer, w *policy.Witness) {
	t := w.X509
	fmt.Fprintf(out, "Kind:         x509 (Notary Project signatures)\nTrust ID:     %s\n", t.ID())
	for _, id := range t.TrustedIdentities {
		fmt.Fprintf(out, "Identity:     %s\n", id)
	}
	for _, c := range t.CACertificates {
		fmt.Fprintf(out, "CA:           %s (until %s)\n", c.Subject, c.NotAfter.UTC().Format("2006-01-02"))
	}
	for _, c := range t.TSACertificates {
		fmt.Fprintf(out, "TSA:          %s (until %s)\n", c.Subject, c.NotAfter.UTC().Format("2006-01-02"))
	}
	fmt.Fprintf(out, "Revocation:   %s (not checked on the node)\n", t.Revocation)
}

func newWitnessDeleteCmd(file *bundleFile) *cobra.Command {
	return file.editCmd("delete NAME", "Delete a witness; refused while a security policy uses it",
		func(b *policy.Bundle, name string) error { return b.DeleteWitness(name) }, "witness %q deleted")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// signatureLocation says where nodes look for a witness's signatures.
func signatureLocation(w *policy.Witness) string {
	if w.SignatureRepository == "" {
		return "in the image's own repository"
	}
	return "in " + w.SignatureRepository + " (signatureRepository), and in the image's own repository"
}
