//go:build !nodeonly

package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nri-csig/nri-csig/internal/atomicfile"
	"github.com/nri-csig/nri-csig/pkg/bundleoci"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/spf13/cobra"
)

// defaultBundleFile is where the CLI edits a bundle unless --bundle says otherwise.
const defaultBundleFile = "./csig-bundle.yaml"

// bundleFile is the --bundle flag shared by the witness, policy and bundle
// command groups, and the load/save logic of the file it names.
type bundleFile struct{ path string }

// editCmd is a command that applies one named edit to the bundle file,
// saves it (raising the serial) and says what it did (done has one %q).
func (f *bundleFile) editCmd(use, short string, edit func(b *policy.Bundle, name string) error, done string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := f.load()
			if err != nil {
				return err
			}
			if err := edit(b, args[0]); err != nil {
				return err
			}
			if err := f.save(cmd, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), done+"\n", args[0])
			return nil
		},
	}
}

// listCmd is a "list" command printing one table row per item of the bundle.
func (f *bundleFile) listCmd(short, header string, rows func(b *policy.Bundle) []string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.load()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, header)
			for _, r := range rows(b) {
				fmt.Fprintln(tw, r)
			}
			return tw.Flush()
		},
	}
}

func (f *bundleFile) addFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.path, "bundle", defaultBundleFile, "policy bundle file to read and edit")
	_ = cmd.MarkPersistentFlagFilename("bundle", "yaml", "yml")
}

func (f *bundleFile) sigPath() string { return f.path + policy.SignatureSuffix }

func (f *bundleFile) load() (*policy.Bundle, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no bundle file at %s; create one with 'nri-csig witness create' or pass --bundle", f.path)
	}
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return policy.ParseBundle(f.path, data)
}

// loadOrNew loads the bundle, or starts an empty one when the file is absent.
func (f *bundleFile) loadOrNew() (*policy.Bundle, error) {
	if _, err := os.Stat(f.path); errors.Is(err, fs.ErrNotExist) {
		return policy.NewBundle(bundleName(f.path)), nil
	}
	return f.load()
}

var nameOK = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

func bundleName(path string) string {
	n := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if !nameOK.MatchString(n) || len(n) > 253 {
		return "bundle"
	}
	return n
}

// save raises the serial, validates the result by parsing it back and writes
// it atomically. The signature of the old content no longer applies and is
// removed, so that nobody publishes a bundle with a signature that fails.
func (f *bundleFile) save(cmd *cobra.Command, b *policy.Bundle) error {
	b.Touch()
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	if _, err := policy.ParseBundle(f.path+" (after the edit)", data); err != nil {
		return fmt.Errorf("the edit would make an invalid bundle, nothing was written: %w", err)
	}
	if err := atomicfile.WriteFile(f.path, data, 0o644); err != nil {
		return err
	}
	if err := os.Remove(f.sigPath()); err == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: removed the signature %s, which no longer matches; run 'nri-csig bundle sign'\n", f.sigPath())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale signature: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: serial %d\n", f.path, b.Serial)
	return nil
}

func newBundleCmd() *cobra.Command {
	var file bundleFile
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Sign, verify, push and pull policy bundles",
		Long: `A policy bundle is the one versioned document a node enforces: the witnesses,
security policies, exemptions and revocations, and a serial. Nodes read it from a
file or directory (a mounted ConfigMap) or pull it from an OCI registry.

When a node is configured with a bundle-signing key it accepts only bundles with a
valid detached signature (FILE.sig) by that key, and never one whose serial is lower
than the bundle in force. The usual flow:

  nri-csig policy enable prod            # any edit raises the serial
  nri-csig bundle sign --key alikms://cn-hangzhou/key-...   # writes csig-bundle.yaml.sig
  nri-csig bundle push registry.example/security/csig-bundle:prod`,
	}
	file.addFlags(cmd)
	cmd.AddCommand(newBundleSignCmd(&file), newBundleVerifyCmd(&file), newBundlePushCmd(&file), newBundlePullCmd(&file))
	return cmd
}

// defaultBundleValidity is how long a bundle signed by "bundle sign" is
// valid unless --expires says otherwise.
const defaultBundleValidity = 30 * 24 * time.Hour

func newBundleSignCmd(file *bundleFile) *cobra.Command {
	var (
		ko       keyOptions
		validity time.Duration
		noExpiry bool
	)
	cmd := &cobra.Command{
		Use:   "sign --key REF",
		Short: "Date the bundle (spec.expires) and write its detached signature (FILE.sig)",
		Long: `Check the bundle, set its signed expiry (spec.expires: now + --expires, 30 days by
default), then sign its exact bytes with the bundle-signing key and write the signature
document to FILE.sig. Nodes configured with the matching public key refuse bundles
without a valid signature, and never put in force a bundle past its expires: publish
a newer one before then (nodes report the bundle stale in its last day, or its last
20% of life when it has a notBefore). Re-signing a bundle that already had a signature
(a renewal) raises its serial, since nodes refuse other content at a serial they have.
Otherwise the serial is not changed: every CLI edit already raised it; a bundle edited
by hand needs a higher spec.serial before nodes accept it.

--no-expiry signs the file exactly as it is, expires or not; without one, nodes enforce
the bundle until a newer one arrives, and a replay of it is refused only by its serial.
` + keyFlagsHelp,
		Example: `  nri-csig bundle sign --key alikms://cn-hangzhou/key-4a3b...?version=v1
  nri-csig bundle sign --key ./bundle-signing.key --bundle ./prod.yaml --expires 168h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file.path)
			if err != nil {
				return fmt.Errorf("read bundle: %w", err)
			}
			b, err := policy.ParseBundle(file.path, data)
			if err != nil {
				return fmt.Errorf("refusing to sign an invalid bundle: %w", err)
			}
			if !noExpiry {
				if data, err = dateBundle(cmd, file, b, validity); err != nil {
					return err
				}
			} else if b.Expires.IsZero() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s has no spec.expires (--no-expiry): nodes enforce it until a newer bundle arrives\n", file.path)
			}
			s, err := ko.Open(cmd.Context())
			if err != nil {
				return err
			}
			sig, err := policy.SignBundle(cmd.Context(), data, s)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(file.sigPath(), sig, 0o644); err != nil {
				return err
			}
			expires := "no expiry"
			if !b.Expires.IsZero() {
				expires = "expires " + b.Expires.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s (serial %d, %s, %s) into %s\n", file.path, b.Serial, expires, policy.BundleDigest(data), file.sigPath())
			return nil
		},
	}
	ko.AddFlags(cmd)
	cmd.Flags().DurationVar(&validity, "expires", defaultBundleValidity, "how long the signed bundle is valid: sets spec.expires to now plus this")
	cmd.Flags().BoolVar(&noExpiry, "no-expiry", false, "sign the file as it is, without setting spec.expires (nodes then enforce it until a newer bundle arrives)")
	cmd.MarkFlagsMutuallyExclusive("expires", "no-expiry")
	return cmd
}

// dateBundle sets b's expiry to now+validity, raising the serial when the
// file was already signed (a renewal of a bundle nodes may have), writes
// the bundle and returns its new bytes.
func dateBundle(cmd *cobra.Command, file *bundleFile, b *policy.Bundle, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("--expires %v: give a positive duration such as 720h, or --no-expiry", validity)
	}
	b.Expires = time.Now().Add(validity).UTC().Truncate(time.Second)
	if !b.NotBefore.IsZero() && !b.NotBefore.Before(b.Expires) {
		return nil, fmt.Errorf("spec.notBefore %s is not before the new expiry %s; fix notBefore or give a longer --expires",
			b.NotBefore.Format(time.RFC3339), b.Expires.Format(time.RFC3339))
	}
	if _, err := os.Stat(file.sigPath()); err == nil {
		b.Touch()
	}
	data, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := policy.ParseBundle(file.path+" (dated)", data); err != nil {
		return nil, fmt.Errorf("dating the bundle would make it invalid, nothing was written: %w", err)
	}
	if err := atomicfile.WriteFile(file.path, data, 0o644); err != nil {
		return nil, err
	}
	return data, nil
}

func newBundleVerifyCmd(file *bundleFile) *cobra.Command {
	var ko keyOptions
	cmd := &cobra.Command{
		Use:   "verify --key PUB",
		Short: "Check the bundle file and its detached signature, as a node would",
		Long: `Check the bundle file and its detached signature (FILE.sig) with the bundle-signing
public key, as a node configured with that key would, parse the bundle, and check its
validity (spec.notBefore, spec.expires) at the current time: a node refuses a bundle past
its expiry.
` + keyFlagsHelp,
		Example: `  nri-csig bundle verify --key ./bundle-signing.pub
  nri-csig bundle verify --key alikms://cn-hangzhou/key-4a3b...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := ko.OpenPublic(cmd.Context())
			if err != nil {
				return err
			}
			data, err := os.ReadFile(file.path)
			if err != nil {
				return fmt.Errorf("read bundle: %w", err)
			}
			sig, err := os.ReadFile(file.sigPath())
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("read signature: %w", err)
			}
			doc, err := policy.VerifyBundle(data, sig, pub)
			if err != nil {
				return fmt.Errorf("%s: %w", file.path, err)
			}
			b, err := policy.ParseBundle(file.path, data)
			if err != nil {
				return err
			}
			now := time.Now()
			if err := b.ValidAt(now); err != nil {
				return fmt.Errorf("%s: a node refuses it: %w", file.path, err)
			}
			validity := "no expiry"
			if !b.Expires.IsZero() {
				validity = fmt.Sprintf("%s, expires %s", b.FreshnessAt(now), b.Expires.Format(time.RFC3339))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verified %s: serial %d (%s), %d witnesses, %d policies, signed by %s (%s)\n",
				file.path, b.Serial, validity, len(b.Witnesses), len(b.Policies), doc.KeyFingerprint, doc.Algorithm)
			return nil
		},
	}
	ko.AddFlags(cmd)
	return cmd
}

func newBundlePushCmd(file *bundleFile) *cobra.Command {
	var reg registryFlags
	cmd := &cobra.Command{
		Use:   "push REF",
		Short: "Push the bundle file and its signature to an OCI registry",
		Long: `Push the bundle file, and FILE.sig when present, as one OCI artifact
(config media type ` + string(bundleoci.BundleConfigMediaType) + `). Nodes configured with
the reference poll it and load newer serials. Plain HTTP is used only for loopback
registries unless --allow-http-registry is given.
` + registryFlagsHelp,
		Example: `  nri-csig bundle push registry.example/security/csig-bundle:prod`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(file.path)
			if err != nil {
				return fmt.Errorf("read bundle: %w", err)
			}
			sig, err := os.ReadFile(file.sigPath())
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is not signed; nodes with a bundle-signing key will refuse it ('nri-csig bundle sign')\n", file.path)
			} else if err != nil {
				return fmt.Errorf("read signature: %w", err)
			}
			client, err := reg.client()
			if err != nil {
				return err
			}
			ctx, cancel := reg.context(cmd)
			defer cancel()
			digest, err := bundleoci.PushBundle(ctx, args[0], data, sig, bundleoci.WithRegistryClient(client))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s to %s@%s\n", file.path, args[0], digest)
			return nil
		},
	}
	reg.addFlags(cmd)
	return cmd
}

func newBundlePullCmd(file *bundleFile) *cobra.Command {
	var (
		reg registryFlags
		ko  keyOptions
	)
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull a bundle (and its signature) from an OCI registry into the bundle file",
		Long: `Pull the bundle artifact at REF into the bundle file (and FILE.sig), e.g. to
review or edit what the fleet enforces. With --key the signature is checked before
anything is written.
` + keyFlagsHelp + registryFlagsHelp,
		Example: `  nri-csig bundle pull registry.example/security/csig-bundle:prod --key ./bundle-signing.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := reg.client()
			if err != nil {
				return err
			}
			ctx, cancel := reg.context(cmd)
			defer cancel()
			data, sig, digest, err := bundleoci.PullBundle(ctx, args[0], bundleoci.WithRegistryClient(client))
			if err != nil {
				return err
			}
			if err := ko.fromEnv(); err != nil {
				return err
			}
			if ko.Key != "" {
				pub, err := ko.OpenPublic(cmd.Context())
				if err != nil {
					return err
				}
				if _, err := policy.VerifyBundle(data, sig, pub); err != nil {
					return fmt.Errorf("%s: %w; nothing was written", args[0], err)
				}
			}
			b, err := policy.ParseBundle(args[0], data)
			if err != nil {
				return fmt.Errorf("pulled an invalid bundle, nothing was written: %w", err)
			}
			if err := atomicfile.WriteFile(file.path, data, 0o644); err != nil {
				return err
			}
			if sig != nil {
				err = atomicfile.WriteFile(file.sigPath(), sig, 0o644)
			} else if err = os.Remove(file.sigPath()); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
			if err != nil {
				return err
			}
			signed := "unsigned"
			if sig != nil {
				signed = "signature in " + file.sigPath()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %s@%s into %s: serial %d, %s\n", args[0], digest, file.path, b.Serial, signed)
			return nil
		},
	}
	reg.addFlags(cmd)
	ko.AddFlags(cmd)
	cmd.Flags().Lookup("key").Usage = "bundle-signing public key to check the signature with before writing: PEM file or alikms://... ($NRI_CSIG_KEY)"
	return cmd
}
