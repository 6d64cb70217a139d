//go:build !nodeonly

package cli

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/sign"
)

type signOptions struct {
	key         keyOptions
	annotations []string
	platform    string
	registry    registryFlags
	fromFile    fromFileOptions
	sigRepo     signatureRepoFlag
	// notation: --format notation with --certificate-chain.
	notation notationSignFlags
}

func newSignCmd() *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign --key REF (IMAGE | --from-file FILE)",
		Short: "Sign an image digest and store the signature next to the image (cosign format)",
		Long: `Sign resolves IMAGE to its digest once, signs the cosign simple-signing payload
over that digest with the key, and appends the signature to the tag
sha256-<hex>.sig in the image's repository, keeping the signatures already there.

A tag that names a multi-platform index signs the index; --platform signs the
one platform manifest instead. Signatures made here verify with
"cosign verify --key".
` + signatureRepoHelp + fromFileHelp + keyFlagsHelp + registryFlagsHelp,
		Example: `  nri-csig sign --key witness.pem registry.example.com/app:v1
  nri-csig sign --key alikms://cn-hangzhou/key-abc --annotation ci=build-42 registry.example.com/app:v1
  nri-csig sign --key alikms://cn-hangzhou/key-abc?version=v1 --from-file running-digests.txt --kms-qps 50
  nri-csig sign --key witness.pem --signature-repository registry.example.com/team/signatures registry.example.com/app:v1`,
		Args: signArgs(&o.fromFile),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.notation.check(o.fromFile.path != "", len(o.annotations) > 0); err != nil {
				return err
			}
			if o.notation.on() {
				if err := needCertWitnesses("sign --format notation"); err != nil {
					return err
				}
			}
			if o.fromFile.path != "" {
				return o.runFromFile(cmd)
			}
			return o.run(cmd, args[0])
		},
	}
	o.key.AddFlags(cmd)
	cmd.Flags().StringArrayVarP(&o.annotations, "annotation", "a", nil, "extra key=value annotation in the signed payload (repeatable)")
	cmd.Flags().StringVar(&o.platform, "platform", "", "sign the manifest of this platform (os/arch[/variant]) of an index instead of the index")
	_ = cmd.MarkFlagFilename("key")
	o.registry.addFlags(cmd)
	o.fromFile.addFlags(cmd)
	o.sigRepo.addFlags(cmd, "store")
	o.notation.addFlags(cmd)
	return cmd
}

func (o *signOptions) run(cmd *cobra.Command, image string) error {
	ctx, cancel := o.registry.context(cmd)
	defer cancel()
	ann := map[string]string{}
	for _, a := range o.annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("--annotation %q: want key=value", a)
		}
		ann[k] = v
	}
	if len(ann) == 0 {
		ann = nil
	}
	ref, err := registry.ParseReference(image)
	if err != nil {
		return err
	}
	target, override, err := o.sigRepo.repository(cmd)
	if err != nil {
		return err
	}
	signer, err := o.key.Open(ctx)
	if err != nil {
		return err
	}
	printKeyWarnings(cmd.ErrOrStderr(), signer)
	// One handshake for the run: resolve, read the signatures there, write.
	client, err := o.registry.client()
	if err != nil {
		return err
	}
	repo, err := client.Repo(ctx, ref.Context(), true)
	if err != nil {
		return err
	}
	desc, err := repo.Manifest(ctx, ref.Identifier(), registry.ImageMediaTypes, registry.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", ref, err)
	}
	digest := ref.Context().Digest(desc.Digest)
	what := "manifest"
	if desc.MediaType.IsIndex() {
		what = "index"
		if o.platform != "" {
			if digest, err = platformDigest(ref.Context(), desc, o.platform); err != nil {
				return err
			}
			what = o.platform + " manifest"
		}
	} else if o.platform != "" {
		return fmt.Errorf("--platform %s: %s is a single-platform manifest, not an index; sign it without --platform", o.platform, ref)
	}
	if o.notation.on() {
		if override {
			return fmt.Errorf("--format notation stores the signature as a referrer in the image's repository, as notation does; drop --signature-repository (or unset COSIGN_REPOSITORY)")
		}
		return o.notation.sign(cmd, signer, digest, what, repo.RemoteOptions(ctx)...)
	}
	sig, err := sign.Digest(ctx, signer, digest, ann)
	if err != nil {
		return err
	}
	if err := checkOwnSignature(ctx, signer, sig); err != nil {
		return err
	}
	if !override {
		target = digest.Context()
	} else if repo, err = client.Repo(ctx, target, true); err != nil {
		return err
	}
	if err := sign.AttachTo(ctx, sig, target, repo.RemoteOptions(ctx)...); err != nil {
		return err
	}
	pub, err := signer.PublicKey(ctx)
	if err != nil {
		return err
	}
	fp, err := keys.Fingerprint(pub)
	if err != nil {
		return err
	}
	info := signer.Info()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Signed %s %s\n", what, digest.DigestStr())
	fmt.Fprintf(out, "  image:     %s\n", digest)
	fmt.Fprintf(out, "  key:       %s (%s %s %s)\n", fp, info.Provider, info.KeySpec, info.Algorithm)
	if info.KeyVersionID != "" {
		fmt.Fprintf(out, "  version:   %s of %s\n", info.KeyVersionID, info.KeyID)
	}
	fmt.Fprintf(out, "  stored in: %s\n", sign.SignatureTag(sig, target))
	return nil
}

// platformDigest returns the digest of the manifest for platform in index desc.
func platformDigest(repo name.Repository, desc *registry.Manifest, platform string) (name.Digest, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return name.Digest{}, fmt.Errorf("--platform %q: %w", platform, err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Raw))
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading index %s: %w", desc.Digest, err)
	}
	var found []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		found = append(found, m.Platform.String())
		if m.Platform.Satisfies(*want) {
			return repo.Digest(m.Digest.String()), nil
		}
	}
	return name.Digest{}, fmt.Errorf("--platform %s: not in the index (it has %s)", platform, strings.Join(found, ", "))
}
