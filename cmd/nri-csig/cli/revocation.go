//go:build !nodeonly

package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/policy"
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
    notwithstanding; so is every image whose config is the config that a revoked
    manifest (or the manifests of a revoked index) names, recorded as configDigests:
    a new manifest around the same config and layers is the same content.

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
		images    []string
		reg       registryFlags
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME (--key-fingerprint FP... | --image REF... | --image-digest DIGEST... [--config-digest DIGEST...]) [--effective WHEN] --reason TEXT",
		Short: "Revoke witness keys or images",
		Long: `Create a revocation of witness keys or images.

--image resolves a reference (repo@sha256:... or repo:tag) in its registry and
revokes the manifest or index digest it names together with the config digests
of that manifest (or of every manifest of that index): any image with one of
those configs is then refused, however it is re-wrapped.

--image-digest revokes a digest without asking a registry (offline); add the
configs it names by hand with --config-digest, or only that exact manifest is
refused.`,
		Example: `  nri-csig revocation create --name sec-93 --image registry.example.com/app@sha256:0d1c... --reason "built on a compromised runner"
  nri-csig revocation create --name sec-94 --image-digest sha256:0d1c... --config-digest sha256:5e3a... --reason "offline"
  nri-csig revocation create --name leaked-key --key-fingerprint sha256:2c18... --reason "key material leaked"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseWhen(effective, time.Now())
			if err != nil {
				return fmt.Errorf("--effective: %w", err)
			}
			r.Effective = t
			if len(r.ConfigDigests) > 0 && len(r.ImageDigests) == 0 && len(images) == 0 {
				return usageError(fmt.Errorf("--config-digest names the configs of revoked images: give --image-digest or --image too"))
			}
			b, err := file.load()
			if err != nil {
				return err
			}
			if len(images) > 0 {
				client, err := reg.client()
				if err != nil {
					return err
				}
				ctx, cancel := reg.context(cmd)
				defer cancel()
				for _, ref := range images {
					digest, configs, err := resolveContent(ctx, client, ref)
					if err != nil {
						return err
					}
					r.ImageDigests = appendNew(r.ImageDigests, digest)
					r.ConfigDigests = appendNew(r.ConfigDigests, configs...)
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is %s, config %s\n", ref, digest, strings.Join(configs, ", "))
				}
			} else if len(r.ImageDigests) > 0 && len(r.ConfigDigests) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: only these exact digests are revoked; a manifest re-wrapping the same config still runs where no policy refuses it. Give --image REPO@DIGEST (resolved in the registry) or --config-digest to revoke the content\n")
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
	f.StringArrayVar(&images, "image", nil, "image reference to resolve in its registry and revoke with the config digests it names (repeatable)")
	f.StringSliceVar(&r.ImageDigests, "image-digest", nil, "image digest (sha256:...) to refuse everywhere, without asking a registry (repeatable)")
	f.StringSliceVar(&r.ConfigDigests, "config-digest", nil, "config digest (sha256:...) a revoked image names, given by hand (repeatable)")
	f.StringVar(&effective, "effective", "now", "when the revocation takes effect: RFC 3339 time, \"now\", or a duration from now")
	f.StringVar(&r.Reason, "reason", "", "why, for the audit trail")
	reg.addFlags(cmd)
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("reason")
	cmd.MarkFlagsOneRequired("key-fingerprint", "image-digest", "image")
	return cmd
}

// maxIndexChildren bounds how many manifests of an index are resolved.
const maxIndexChildren = 256

// resolveContent returns the manifest or index digest ref names and the
// config digests of that manifest, or of every image manifest of that index.
func resolveContent(ctx context.Context, c *registry.Client, ref string) (string, []string, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return "", nil, err
	}
	repo, err := c.Repo(ctx, r.Context(), false)
	if err != nil {
		return "", nil, fmt.Errorf("--image %s: %w; use --image-digest and --config-digest offline", ref, err)
	}
	desc, err := remote.Get(r, repo.RemoteOptions(ctx)...)
	if err != nil {
		return "", nil, fmt.Errorf("--image %s: resolving it in the registry: %w; use --image-digest and --config-digest offline", ref, err)
	}
	digest := desc.Digest.String()
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return "", nil, fmt.Errorf("--image %s: reading the manifest: %w", ref, err)
		}
		cfg, err := img.ConfigName()
		if err != nil {
			return "", nil, fmt.Errorf("--image %s: reading the config digest: %w", ref, err)
		}
		return digest, []string{cfg.String()}, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return "", nil, fmt.Errorf("--image %s: reading the index: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", nil, fmt.Errorf("--image %s: reading the index: %w", ref, err)
	}
	if len(im.Manifests) > maxIndexChildren {
		return "", nil, fmt.Errorf("--image %s: the index lists %d manifests, more than %d; revoke its manifests one by one", ref, len(im.Manifests), maxIndexChildren)
	}
	var configs []string
	for _, m := range im.Manifests {
		if !m.MediaType.IsImage() {
			continue // nested indexes and attestations name no config of their own here
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return "", nil, fmt.Errorf("--image %s: reading manifest %s of the index: %w", ref, m.Digest, err)
		}
		cfg, err := img.ConfigName()
		if err != nil {
			return "", nil, fmt.Errorf("--image %s: reading the config of manifest %s: %w", ref, m.Digest, err)
		}
		configs = appendNew(configs, cfg.String())
	}
	if len(configs) == 0 {
		return "", nil, fmt.Errorf("--image %s: the index names no image manifest; revoke it with --image-digest", ref)
	}
	return digest, configs, nil
}

func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func newRevocationListCmd(file *bundleFile) *cobra.Command {
	return file.listCmd("List the revocations", "NAME\tEFFECTIVE\tKEYS\tIMAGE DIGESTS\tCONFIG DIGESTS\tREASON",
		func(b *policy.Bundle) (rows []string) {
			for _, r := range b.Revocations {
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.Name, r.Effective.Format(time.RFC3339), joinOrDash(r.Keys),
					joinOrDash(r.ImageDigests), joinOrDash(r.ConfigDigests), r.Reason))
			}
			return rows
		})
}

func newRevocationDeleteCmd(file *bundleFile) *cobra.Command {
	return file.editCmd("delete NAME", "Delete a revocation: what it revoked is trusted again",
		func(b *policy.Bundle, name string) error { return b.DeleteRevocation(name) }, "revocation %q deleted")
}
