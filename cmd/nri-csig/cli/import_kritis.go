//go:build !nodeonly

package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/kritis"
)

// maxImportFile bounds each file import reads.
const maxImportFile = 64 << 20

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import the policies of another image-signing system into a policy bundle",
	}
	cmd.AddCommand(newImportKritisCmd())
	return cmd
}

func newImportKritisCmd() *cobra.Command {
	var (
		file      bundleFile
		cluster   string
		region    string
		enforce   bool
		write     bool
		running   string
		exemptFor time.Duration
	)
	cmd := &cobra.Command{
		Use:   "kritis --cluster NAME [--region REGION] [--running-digests FILE] [--write] FILE...",
		Short: "Turn kritis-validation-hook objects (Security Center container signature) into a policy bundle",
		Long: `Import reads kritis objects (group kritis.grafeas.io) from YAML files, as
  kubectl get attestationauthorities,genericattestationpolicies,admissionallowlists -A -o yaml
prints them, and plans what they become in the policy bundle:

  AttestationAuthority      -> witness of the same name: the key from spec.publicKeyData,
                               the KMS reference alikms://REGION/<spec.publicKeyId> with
                               --region, the description from spec.noteReference
  GenericAttestationPolicy  -> security policy <namespace>.<name> for its namespace on
                               --cluster; every attestationAuthorityNames entry must have
                               signed (N of N); mode audit unless --enforce
  AdmissionAllowlist        -> not mapped: a name pattern trusts whatever is pushed under
                               that name, nri-csig trusts digests. Each pattern is listed;
                               with --running-digests the digests that run today and match
                               become exemptions expiring after --exempt-for

It prints the plan (what maps, what does not and why) and changes nothing unless
--write is given. kritis signatures live in ACR's metadata and cannot be exported:
re-sign the digests that run today with the same KMS key (nri-csig sign --from-file),
then watch would-deny in the journal before switching the policies to enforce.
See docs/MIGRATING.md.`,
		Example: `  kubectl get attestationauthorities,genericattestationpolicies,admissionallowlists -A -o yaml > kritis.yaml
  kubectl get pods -A -o json > pods.json
  nri-csig import kritis --cluster prod-1 --region cn-hangzhou --running-digests pods.json kritis.yaml
  nri-csig import kritis --cluster prod-1 --region cn-hangzhou --running-digests pods.json --write kritis.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var objs kritis.Objects
			for _, f := range args {
				data, err := readBounded(f)
				if err != nil {
					return err
				}
				if err := objs.Parse(f, data); err != nil {
					return err
				}
			}
			opts := kritis.Options{Cluster: cluster, Region: region, Enforce: enforce, Now: time.Now(), ExemptFor: exemptFor}
			out := cmd.OutOrStdout()
			if running != "" {
				data, err := readBounded(running)
				if err != nil {
					return err
				}
				imgs, notes, err := kritis.ParseRunning(data)
				if err != nil {
					return fmt.Errorf("%s: %w", running, err)
				}
				for _, n := range notes {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", running, n)
				}
				opts.Running = imgs
			}
			plan, err := kritis.Map(&objs, opts)
			if err != nil {
				return err
			}
			printPlan(out, plan)
			b, err := file.loadOrNew()
			if err != nil {
				return err
			}
			if err := plan.Apply(b); err != nil {
				return fmt.Errorf("cannot add the import to %s, nothing was written: %w", file.path, err)
			}
			if !write {
				fmt.Fprintf(out, "\nDry run: %s is unchanged. Run again with --write to add %d witnesses, %d policies and %d exemptions.\n",
					file.path, len(plan.Witnesses), len(plan.Policies), len(plan.Exemptions))
				return nil
			}
			if err := file.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nWrote %s: %d witnesses, %d policies (%s), %d exemptions. Next: re-sign the running digests, then 'nri-csig bundle sign'.\n",
				file.path, len(plan.Witnesses), len(plan.Policies), modeName(enforce), len(plan.Exemptions))
			return nil
		},
	}
	file.addFlags(cmd)
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster the imported policies cover (required)")
	cmd.Flags().StringVar(&region, "region", "", "KMS region of the keys named by spec.publicKeyId, e.g. cn-hangzhou (recorded as alikms://REGION/KEY-ID)")
	cmd.Flags().BoolVar(&enforce, "enforce", false, "import the policies in enforce mode (default audit: would-deny is logged, nothing refused)")
	cmd.Flags().BoolVar(&write, "write", false, "write the bundle; without it only the plan is printed")
	cmd.Flags().StringVar(&running, "running-digests", "", "images that run today: output of 'kubectl get pods -A -o json' or 'crictl images --digests --no-trunc'")
	cmd.Flags().DurationVar(&exemptFor, "exempt-for", 14*24*time.Hour, "how long exemptions made from --running-digests last")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

func modeName(enforce bool) string {
	if enforce {
		return "enforce"
	}
	return "audit"
}

func printPlan(w io.Writer, plan *kritis.Plan) {
	fmt.Fprintln(w, "Plan:")
	for _, l := range plan.Lines {
		mark := "  maps    "
		if !l.Mapped {
			mark = "  NO MAP  "
		}
		fmt.Fprintf(w, "%s%s: %s\n", mark, l.Object, l.Text)
	}
	for _, e := range plan.Exemptions {
		fmt.Fprintf(w, "  exempt  %s in %s until %s (%s)\n", e.ImageDigest, e.Namespace, e.Expires.Format(time.RFC3339), e.Name)
	}
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxImportFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxImportFile>>20)
	}
	return data, nil
}
