package cli

import (
	"context"
	"fmt"
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
signing key, usually an asymmetric Alibaba Cloud KMS key (SIGN/VERIFY, RSA_2048).
Security policies name the witnesses that must have signed an image digest.

The bundle stores only public keys and their fingerprints, so nodes verify offline
and never need KMS credentials. Every edit raises the bundle's serial and drops the
now stale signature file: run "nri-csig bundle sign" before publishing.`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newWitnessCreateCmd(&file), newWitnessAddKeyCmd(&file), newWitnessRemoveKeyCmd(&file), newWitnessListCmd(&file), newWitnessShowCmd(&file), newWitnessDeleteCmd(&file))
	return cmd
}

func newWitnessCreateCmd(file *bundleFile) *cobra.Command {
	var (
		name, desc, sigRepo string
		ko                  keyOptions
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --key REF [--description TEXT] [--signature-repository REPO]",
		Short: "Add a witness whose public key is read from a KMS key or a PEM file",
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
` + keyFlagsHelp,
		Example: `  nri-csig witness create --name release --description "release pipeline" \
      --key alikms://cn-hangzhou/key-4a3b...?version=v1
  nri-csig witness create --name dev --key ./dev.pub --bundle ./dev-bundle.yaml
  nri-csig witness create --name ci --key ./ci.pub --signature-repository registry.example.com/team/signatures`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := witnessKey(cmd.Context(), &ko)
			if err != nil {
				return err
			}
			b, err := file.loadOrNew()
			if err != nil {
				return err
			}
			if err := b.AddWitness(&policy.Witness{Name: name, Description: desc, Keys: []*policy.Key{k}, SignatureRepository: sigRepo}); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "witness %q created with key %s (%s, %s)\n", name, k.Fingerprint, k.KeySpec, k.Algorithm)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the witness (letters, digits, '.', '_', '-')")
	cmd.Flags().StringVar(&desc, "description", "", "what this witness attests, for people")
	cmd.Flags().StringVar(&sigRepo, "signature-repository", "", "repository holding this witness's signatures instead of the image's (cosign's COSIGN_REPOSITORY), e.g. registry.example.com/team/signatures")
	ko.AddFlags(cmd)
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagFilename("key")
	return cmd
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
