package cli

import (
	"fmt"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

func newRevocationCmd() *cobra.Command {
	var file bundleFile
	cmd := &cobra.Command{
		Use:   "revocation",
		Short: "Create, list and delete revocations of keys and image digests in a bundle file",
		Long: `A revocation withdraws trust from its effective time on:
  - signatures by a revoked key (by fingerprint, as 'nri-csig witness show' prints it)
    no longer count towards any policy — also those made before the revocation, since a
    signature carries no trusted time;
  - a revoked image digest is refused in every namespace the node checks, exemptions
    notwithstanding.

Every edit raises the bundle's serial and drops the now stale signature file: run
"nri-csig bundle sign" before publishing.`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newRevocationCreateCmd(&file), newRevocationListCmd(&file), newRevocationDeleteCmd(&file))
	return cmd
}

func newRevocationCreateCmd(file *bundleFile) *cobra.Command {
	var (
		r         policy.Revocation
		effective string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME (--key-fingerprint FP... | --image-digest DIGEST...) [--effective WHEN] --reason TEXT",
		Short: "Revoke witness keys or image digests",
		Example: `  nri-csig revocation create --name sec-93 --image-digest sha256:0d1c... --reason "built on a compromised runner"
  nri-csig revocation create --name leaked-key --key-fingerprint sha256:2c18... --reason "key material leaked"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseWhen(effective, time.Now())
			if err != nil {
				return fmt.Errorf("--effective: %w", err)
			}
			r.Effective = t
			b, err := file.load()
			if err != nil {
				return err
			}
			for _, fp := range r.Keys {
				if k := b.KeyByFingerprint(fp); k != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is a key of witness %q; its signatures stop counting\n", fp, k.Witness)
				}
			}
			nr := r
			if err := b.AddRevocation(&nr); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revocation %q created, effective %s\n", r.Name, t.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Name, "name", "", "name of the revocation")
	f.StringSliceVar(&r.Keys, "key-fingerprint", nil, "fingerprint (sha256:...) of a witness key to revoke (repeatable)")
	f.StringSliceVar(&r.ImageDigests, "image-digest", nil, "image digest (sha256:...) to refuse everywhere (repeatable)")
	f.StringVar(&effective, "effective", "now", "when the revocation takes effect: RFC 3339 time, \"now\", or a duration from now")
	f.StringVar(&r.Reason, "reason", "", "why, for the audit trail")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("reason")
	cmd.MarkFlagsOneRequired("key-fingerprint", "image-digest")
	return cmd
}

func newRevocationListCmd(file *bundleFile) *cobra.Command {
	return file.listCmd("List the revocations", "NAME\tEFFECTIVE\tKEYS\tIMAGE DIGESTS\tREASON",
		func(b *policy.Bundle) (rows []string) {
			for _, r := range b.Revocations {
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.Name, r.Effective.Format(time.RFC3339), joinOrDash(r.Keys), joinOrDash(r.ImageDigests), r.Reason))
			}
			return rows
		})
}

func newRevocationDeleteCmd(file *bundleFile) *cobra.Command {
	return file.editCmd("delete NAME", "Delete a revocation: what it revoked is trusted again",
		func(b *policy.Bundle, name string) error { return b.DeleteRevocation(name) }, "revocation %q deleted")
}
