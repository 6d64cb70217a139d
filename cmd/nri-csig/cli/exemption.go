//go:build !nodeonly

package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

func newExemptionCmd() *cobra.Command {
	var file bundleFile
	cmd := &cobra.Command{
		Use:   "exemption",
		Short: "Create, list and delete time-limited exemptions (break-glass) in a bundle file",
		Long: `An exemption lets one image digest, or one pod, run in one namespace without the
signatures its policies require, until it expires. It lives in the signed bundle, so no
pod can grant itself one. Revoked images stay refused. Prefer image digests: pod names
are chosen by whoever creates the pod.

Every edit raises the bundle's serial and drops the now stale signature file: run
"nri-csig bundle sign" before publishing.`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newExemptionCreateCmd(&file), newExemptionListCmd(&file), newExemptionDeleteCmd(&file))
	return cmd
}

// parseWhen reads an RFC 3339 time, "now", or a duration from now ("72h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now.UTC().Truncate(time.Second), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-31T00:00:00Z), \"now\", nor a duration (72h)", s)
	}
	return t.UTC(), nil
}

func newExemptionCreateCmd(file *bundleFile) *cobra.Command {
	var e policy.Exemption
	var expires string
	cmd := &cobra.Command{
		Use:   "create --name NAME --namespace NS (--image-digest DIGEST | --pod POD) --expires WHEN --reason TEXT",
		Short: "Add an exemption for one image digest or one pod in one namespace",
		Example: `  nri-csig exemption create --name inc-4711 --namespace payments \
      --image-digest sha256:3f0e... --expires 48h --reason "INC-4711 hotfix, signed build follows"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseWhen(expires, time.Now())
			if err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			if !t.After(time.Now()) {
				return fmt.Errorf("--expires %s is in the past; an exemption must end in the future", t.Format(time.RFC3339))
			}
			e.Expires = t
			b, err := file.load()
			if err != nil {
				return err
			}
			ne := e
			if err := b.AddExemption(&ne); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exemption %q created, expires %s\n", e.Name, t.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&e.Name, "name", "", "name of the exemption, e.g. the incident number")
	f.StringVar(&e.Namespace, "namespace", "", "the one Kubernetes namespace it applies to")
	f.StringVar(&e.ImageDigest, "image-digest", "", "image digest (sha256:...) that may run")
	f.StringVar(&e.Pod, "pod", "", "pod name whose containers may run (weaker: anyone creating pods picks names)")
	f.StringVar(&expires, "expires", "", "end of the exemption: RFC 3339 time, or a duration from now such as 48h")
	f.StringVar(&e.Reason, "reason", "", "why, for the audit trail")
	for _, n := range []string{"name", "namespace", "expires", "reason"} {
		_ = cmd.MarkFlagRequired(n)
	}
	cmd.MarkFlagsOneRequired("image-digest", "pod")
	cmd.MarkFlagsMutuallyExclusive("image-digest", "pod")
	return cmd
}

func newExemptionListCmd(file *bundleFile) *cobra.Command {
	return file.listCmd("List the exemptions and whether they are still in force", "NAME\tNAMESPACE\tIMAGE DIGEST / POD\tEXPIRES\tSTATE\tREASON",
		func(b *policy.Bundle) (rows []string) {
			now := time.Now()
			for _, e := range b.Exemptions {
				state := "active"
				if !now.Before(e.Expires) {
					state = "expired"
				}
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", e.Name, e.Namespace, e.ImageDigest+podLabel(e.Pod),
					e.Expires.Format(time.RFC3339), state, e.Reason))
			}
			return rows
		})
}

func podLabel(pod string) string {
	if pod == "" {
		return ""
	}
	return "pod/" + pod
}

func newExemptionDeleteCmd(file *bundleFile) *cobra.Command {
	return file.editCmd("delete NAME", "Delete an exemption",
		func(b *policy.Bundle, name string) error { return b.DeleteExemption(name) }, "exemption %q deleted")
}

// joinOrDash renders a list for tables.
func joinOrDash(s []string) string { return orDash(strings.Join(s, ",")) }
