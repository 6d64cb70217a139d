//go:build !nodeonly

package cli

import (
	"fmt"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

func newPolicyCmd() *cobra.Command {
	var file bundleFile
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Create, enable, disable, list, show and delete security policies in a bundle file",
		Long: `A security policy says which witnesses must have signed the images that run in
some namespaces of some clusters.

  - Every enabled policy that covers (cluster, namespace) must pass for a container
    there to run; "*" as a cluster or namespace covers all of them.
  - A policy passes when its witnesses have all signed the image digest, or, with
    --threshold N, when N of them have.
  - A new policy is disabled: it does nothing until "nri-csig policy enable".
  - --mode audit lets failing containers run and records the violation: use it to
    try a policy out before enforcing it.
  - A namespace no enabled policy covers is not checked, unless the node config
    says "uncovered: deny".

Every edit raises the bundle's serial and drops the now stale signature file: run
"nri-csig bundle sign" before publishing. See docs/POLICY.md for the full rules.`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newPolicyCreateCmd(&file), newPolicyEnableCmd(&file, true), newPolicyEnableCmd(&file, false),
		newPolicyListCmd(&file), newPolicyShowCmd(&file), newPolicyDeleteCmd(&file))
	return cmd
}

func newPolicyCreateCmd(file *bundleFile) *cobra.Command {
	var (
		p         policy.SecurityPolicy
		mode      string
		threshold int
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --witness W... --cluster C... --namespace NS... [--enabled] [--mode audit] [--threshold N]",
		Short: "Add a security policy (disabled unless --enabled)",
		Example: `  # Both witnesses must have signed images in two namespaces of cluster prod-1:
  nri-csig policy create --name prod --witness release --witness qa \
      --cluster prod-1 --namespace default --namespace payments --note "PCI scope"

  # Try a policy out on every namespace without refusing anything:
  nri-csig policy create --name trial --witness release --cluster '*' --namespace '*' \
      --mode audit --enabled`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p.Mode = policy.Mode(mode)
			if p.Mode != policy.Enforce && p.Mode != policy.Audit {
				return fmt.Errorf("--mode %q: use enforce or audit", mode)
			}
			p.Threshold = len(p.Witnesses)
			if cmd.Flags().Changed("threshold") {
				if threshold < 1 || threshold > len(p.Witnesses) {
					return fmt.Errorf("--threshold %d: give a number from 1 to the %d witnesses listed", threshold, len(p.Witnesses))
				}
				p.Threshold = threshold
			}
			b, err := file.load()
			if err != nil {
				return err
			}
			np := p
			if err := b.AddPolicy(&np); err != nil {
				return err
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			state := "disabled: it does nothing until 'nri-csig policy enable " + p.Name + "'"
			if p.Enabled {
				state = "enabled, mode " + string(p.Mode)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "security policy %q created, %s\n", p.Name, state)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Name, "name", "", "name of the policy")
	f.StringSliceVar(&p.Witnesses, "witness", nil, "witness that must have signed (repeat, or comma-separate)")
	f.StringSliceVar(&p.Clusters, "cluster", nil, `cluster the policy covers, as nodes name it in their config; "*" for all (repeatable)`)
	f.StringSliceVar(&p.Namespaces, "namespace", nil, `Kubernetes namespace the policy covers; "*" for all (repeatable)`)
	f.StringVar(&p.Note, "note", "", "free text for people: why the policy exists, who owns it")
	f.BoolVar(&p.Enabled, "enabled", false, "switch the policy on at once (default: created disabled)")
	f.StringVar(&mode, "mode", string(policy.Enforce), "enforce (refuse failing containers) or audit (let them run, record the violation)")
	f.IntVar(&threshold, "threshold", 0, "how many of the witnesses must have signed (default: all of them)")
	for _, n := range []string{"name", "witness", "cluster", "namespace"} {
		_ = cmd.MarkFlagRequired(n)
	}
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"enforce", "audit"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newPolicyEnableCmd(file *bundleFile, enable bool) *cobra.Command {
	use, short, done := "enable NAME", "Switch a security policy on", "security policy %q enabled"
	if !enable {
		use, short, done = "disable NAME", "Switch a security policy off (it stays in the bundle)", "security policy %q disabled"
	}
	return file.editCmd(use, short, func(b *policy.Bundle, name string) error { return b.SetPolicyEnabled(name, enable) }, done)
}

func newPolicyListCmd(file *bundleFile) *cobra.Command {
	return file.listCmd("List the security policies", "NAME\tENABLED\tMODE\tWITNESSES\tCLUSTERS\tNAMESPACES\tNOTE",
		func(b *policy.Bundle) (rows []string) {
			for _, p := range b.Policies {
				rows = append(rows, fmt.Sprintf("%s\t%t\t%s\t%s\t%s\t%s\t%s", p.Name, p.Enabled, p.Mode, witnessesText(p),
					strings.Join(p.Clusters, ","), strings.Join(p.Namespaces, ","), p.Note))
			}
			return rows
		})
}

func witnessesText(p *policy.SecurityPolicy) string {
	s := strings.Join(p.Witnesses, ",")
	if p.Threshold < len(p.Witnesses) {
		s = fmt.Sprintf("%d of %s", p.Threshold, s)
	}
	return s
}

func newPolicyShowCmd(file *bundleFile) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a security policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := file.load()
			if err != nil {
				return err
			}
			p := b.Policy(args[0])
			if p == nil {
				return fmt.Errorf("security policy %q not found in %s; 'nri-csig policy list' shows the policies", args[0], file.path)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Name:        %s\nEnabled:     %t\nMode:        %s\nWitnesses:   %s (%d of %d must have signed)\nClusters:    %s\nNamespaces:  %s\nNote:        %s\n",
				p.Name, p.Enabled, p.Mode, strings.Join(p.Witnesses, ", "), p.Threshold, len(p.Witnesses),
				strings.Join(p.Clusters, ", "), strings.Join(p.Namespaces, ", "), orDash(p.Note))
			return nil
		},
	}
}

func newPolicyDeleteCmd(file *bundleFile) *cobra.Command {
	return file.editCmd("delete NAME", "Delete a security policy",
		func(b *policy.Bundle, name string) error { return b.DeletePolicy(name) }, "security policy %q deleted")
}
