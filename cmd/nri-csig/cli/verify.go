//go:build !nodeonly

package cli

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// maxPlatforms bounds the platform manifests of an index whose signatures
// are reported.
const maxPlatforms = 64

type verifyOptions struct {
	keys      []string
	algorithm string
	output    string
	dir       string
	saveDir   string
	// kms carries the shared KMS flags (endpoint, CA, timeouts) for
	// alikms:// keys; --key itself is repeatable here, so it is not used.
	kms      keyOptions
	kmsCmd   *cobra.Command
	registry registryFlags
	sigstore sigstoreFlags
	sigRepo  signatureRepoFlag
	// x509 describes an x509 witness (Notary Project signatures).
	x509 x509Flags
}

func newVerifyCmd() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify (--key REF | --ca FILE --trusted-identity ID | --trusted-root FILE --issuer ISSUER --subject SAN) IMAGE",
		Short: "Verify the signatures of an image digest against keys, an x509 trust store or a keyless Sigstore identity",
		Long: `Verify resolves IMAGE to its digest once and checks the signatures stored for
that digest (cosign's sha256-<hex>.sig tag and cosign v3 Sigstore bundles
attached as OCI referrers) against the keys, offline (no transparency log is
asked). With --trusted-root, keyless cosign v3 bundles are verified too,
offline, against that trusted root and the --issuer/--subject identity (as a
witness of kind sigstore is on the node). For an index it also reports the
signatures of each platform manifest; the verdict is for the digest IMAGE names.

With --ca and --trusted-identity it also checks Notary Project (notation)
signatures, found as OCI referrers or through the sha256-<hex> referrers tag,
as a node does for a witness of kind x509 with the same flags.
` + x509FlagsHelp + `
With --signature-repository REPO (or $COSIGN_REPOSITORY), the signatures are read
from REPO only, as "cosign verify" reads them with COSIGN_REPOSITORY; a node looks
in the image's repository and in each witness's signatureRepository.
` + signatureRepoHelp + `
Exit status: 0 verified, 1 not verified, 2 usage or operational error
(registry unreachable or refusing access, unreadable key).
` + registryFlagsHelp + sigstoreFlagsHelp,
		Example: `  nri-csig verify --key witness.pub registry.example.com/app:v1
  nri-csig verify --key cosign.pub -o json registry.example.com/app@sha256:...
  nri-csig verify --key witness.pub --signature-dir /var/lib/nri-csig/signatures app@sha256:...
  nri-csig verify --trusted-root trusted_root.json --issuer https://accounts.google.com \
      --subject krel-trust@k8s-releng-prod.iam.gserviceaccount.com registry.k8s.io/pause:3.10
  COSIGN_REPOSITORY=registry.example.com/team/signatures nri-csig verify --key cosign.pub registry.example.com/app:v1
  nri-csig verify --key witness.pub --node-config /etc/nri-csig/config.yaml registry.example.com/app:v1   # as the node reads it
  nri-csig verify --key witness.pub --registry-config-path /etc/containerd/certs.d --docker-config ./config.json registry.invalid/app:1
  nri-csig verify --ca release-ca.pem --trusted-identity "x509.subject: C=CN, ST=Zhejiang, O=Example" registry.example.com/app:v1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(1)(cmd, args); err != nil {
				return usageError(err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.run(cmd, args[0]); err != nil {
				var ee *exitError
				if !errors.As(err, &ee) {
					err = &exitError{code: 2, err: err}
				}
				return err
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	cmd.Flags().StringArrayVar(&o.keys, "key", nil, "verification key: PEM public or private key file, or alikms://<region>/<key-id> (repeatable: any key verifies)")
	cmd.Flags().StringVar(&o.algorithm, "signature-algorithm", "", "RSA_PSS_SHA_256 for witness keys that sign with PSS; default by key type (RSA PKCS#1 v1.5 or ECDSA)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&o.dir, "signature-dir", "", "read signatures from this local OCI layout instead of the registry (IMAGE must name a digest)")
	cmd.Flags().StringVar(&o.saveDir, "save-signature-dir", "", "also store the signatures read from the registry in this local OCI layout, for --signature-dir on air-gapped nodes")
	_ = cmd.MarkFlagFilename("key")
	_ = cmd.MarkFlagDirname("signature-dir")
	o.registry.addFlags(cmd)
	o.sigstore.addFlags(cmd)
	o.sigRepo.addFlags(cmd, "read")
	o.x509.addFlags(cmd)
	// Borrow the KMS flags of the shared key options, without their single
	// --key and --signature-algorithm.
	o.kmsCmd = &cobra.Command{}
	o.kms.AddFlags(o.kmsCmd)
	o.kmsCmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "key" && f.Name != "signature-algorithm" {
			cmd.Flags().AddFlag(f)
		}
	})
	return cmd
}

// openPublic opens one verification key with the KMS flags.
func (o *verifyOptions) openPublic(ctx context.Context, ref string, alg keys.Algorithm) (crypto.PublicKey, error) {
	// Setting the flag marks it changed, so that NRI_CSIG_KEY does not override it.
	if err := o.kmsCmd.Flags().Set("key", ref); err != nil {
		return nil, err
	}
	if err := o.kmsCmd.Flags().Set("signature-algorithm", string(alg)); err != nil {
		return nil, err
	}
	return o.kms.OpenPublic(ctx)
}

// verifyReport is the -o json document.
type verifyReport struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// SignatureRepository is where signatures were looked up (empty with --signature-dir).
	SignatureRepository string           `json:"signatureRepository,omitempty"`
	Verified            bool             `json:"verified"`
	Keys                []verifyKey      `json:"keys"`
	Result              verify.Result    `json:"result"`
	Platform            []platformReport `json:"platforms,omitempty"`
}

type verifyKey struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

type platformReport struct {
	Platform string        `json:"platform"`
	Result   verify.Result `json:"result"`
}

func (o *verifyOptions) run(cmd *cobra.Command, image string) error {
	if len(o.keys) == 0 && !o.x509.set() && !o.sigstore.used() {
		return usageError(errors.New(`required flag "key" not set: pass --key with a public key PEM file, --ca and --trusted-identity for Notary Project signatures, or --trusted-root, --issuer and --subject for keyless signatures`))
	}
	if o.output != "text" && o.output != "json" {
		return usageError(fmt.Errorf("--output %q: use text or json", o.output))
	}
	alg, err := algorithmFlag(o.algorithm)
	if err != nil {
		return usageError(err)
	}
	if o.x509.set() || o.sigstore.used() {
		if err := needCertWitnesses("verify with --ca/--trusted-identity or --trusted-root"); err != nil {
			return err
		}
	}
	ctx, cancel := o.registry.context(cmd)
	defer cancel()

	var ks []verify.Key
	rep := verifyReport{Image: image}
	for _, ref := range o.keys {
		pub, err := o.openPublic(ctx, ref, alg)
		if err != nil {
			return fmt.Errorf("key %s: %w", ref, err)
		}
		fp, err := keys.Fingerprint(pub)
		if err != nil {
			return err
		}
		ks = append(ks, verify.Key{Name: ref, Public: pub, Algorithm: alg})
		rep.Keys = append(rep.Keys, verifyKey{Name: ref, Fingerprint: fp})
	}
	if o.x509.set() {
		k, t, err := o.x509.verifyKey()
		if err != nil {
			return usageError(err)
		}
		ks = append(ks, k)
		rep.Keys = append(rep.Keys, verifyKey{Name: "x509 " + o.x509.ca, Fingerprint: t.ID()})
	}
	if o.sigstore.used() {
		k, err := o.sigstore.key()
		if err != nil {
			return usageError(err)
		}
		ks = append(ks, k)
		rep.Keys = append(rep.Keys, verifyKey{Name: k.Name, Fingerprint: o.sigstore.fingerprint})
	}

	client, err := o.registry.client()
	if err != nil {
		return err
	}
	reg := verify.NewRegistry(verify.WithClient(client))
	ref, err := registry.ParseReference(image)
	if err != nil {
		return usageError(err)
	}
	target, override, err := o.sigRepo.repository(cmd)
	if err != nil {
		return err
	}
	if override && o.dir != "" {
		return usageError(errors.New("--signature-repository names a registry repository; it cannot be combined with --signature-dir"))
	}
	// where names the reference signatures are looked up by: the image's
	// digest, in the signature repository when there is one.
	where := func(d name.Digest) name.Digest {
		if override {
			return target.Digest(d.DigestStr())
		}
		return d
	}
	var (
		digest   name.Digest
		children []platformDigestRef
		store    verify.SignatureFetcher = reg
	)
	if o.dir != "" {
		if o.saveDir != "" {
			return usageError(errors.New("--save-signature-dir reads from the registry; it cannot be combined with --signature-dir"))
		}
		d, ok := ref.(name.Digest)
		if !ok {
			return usageError(fmt.Errorf("--signature-dir: %s names a tag; name the digest (IMAGE@sha256:...), there is no registry to resolve it", image))
		}
		digest, store = d, verify.NewDir(o.dir)
	} else {
		d, desc, err := reg.Resolve(ctx, ref)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", ref, err)
		}
		digest = d
		if desc.MediaType.IsIndex() {
			if children, err = indexChildren(desc.Raw, ref.Context()); err != nil {
				return err
			}
		}
	}
	rep.Digest = digest.DigestStr()
	rep.SignatureRepository = where(digest).Context().String()
	if o.dir != "" {
		rep.SignatureRepository = ""
	}

	ms, err := store.Fetch(ctx, where(digest))
	if err != nil {
		return fmt.Errorf("fetching signatures of %s: %w", digest, err)
	}
	rep.Result = verify.Verify(digest.DigestStr(), ms, ks)
	rep.Verified = rep.Result.OK()
	save := func(d name.Digest, ms []signature.Manifest) error {
		if o.saveDir == "" || len(ms) == 0 {
			return nil
		}
		if err := verify.NewDir(o.saveDir).Put(d, ms); err != nil {
			return fmt.Errorf("--save-signature-dir: %w", err)
		}
		return nil
	}
	if err := save(digest, ms); err != nil {
		return err
	}
	for _, c := range children {
		ms, err := store.Fetch(ctx, where(c.digest))
		if err != nil {
			return fmt.Errorf("fetching signatures of %s: %w", c.digest, err)
		}
		if err := save(c.digest, ms); err != nil {
			return err
		}
		rep.Platform = append(rep.Platform, platformReport{Platform: c.platform, Result: verify.Verify(c.digest.DigestStr(), ms, ks)})
	}

	out := cmd.OutOrStdout()
	if o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(out, &rep)
	}
	if !rep.Verified {
		return &exitError{code: 1, err: fmt.Errorf("not verified: %w", rep.Result.Err())}
	}
	return nil
}

type platformDigestRef struct {
	platform string
	digest   name.Digest
}

// indexChildren lists the platform manifests of an index, bounded.
func indexChildren(raw []byte, repo name.Repository) ([]platformDigestRef, error) {
	var idx struct {
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform *struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
				Variant      string `json:"variant"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("reading index: %w", err)
	}
	var out []platformDigestRef
	for i, m := range idx.Manifests {
		if i == maxPlatforms {
			break
		}
		if signature.ValidateDigest(m.Digest) != nil {
			continue
		}
		p := "unknown"
		if m.Platform != nil {
			p = m.Platform.OS + "/" + m.Platform.Architecture
			if m.Platform.Variant != "" {
				p += "/" + m.Platform.Variant
			}
		}
		out = append(out, platformDigestRef{platform: p, digest: repo.Digest(m.Digest)})
	}
	return out, nil
}

func printReport(w io.Writer, rep *verifyReport) {
	fmt.Fprintf(w, "image %s\ndigest %s\n", rep.Image, rep.Digest)
	if rep.SignatureRepository != "" {
		fmt.Fprintf(w, "signatures looked up in %s\n", rep.SignatureRepository)
	}
	printResult(w, &rep.Result)
	for _, p := range rep.Platform {
		fmt.Fprintf(w, "platform %s %s\n", p.Platform, p.Result.Digest)
		printResult(w, &p.Result)
	}
	if rep.Verified {
		fmt.Fprintf(w, "Verified %s: signed by %s\n", rep.Digest, strings.Join(rep.Result.Keys(), ", "))
	} else {
		fmt.Fprintf(w, "NOT verified %s: %d signature(s) found, none valid for the keys\n", rep.Digest, len(rep.Result.Failures))
	}
}

func printResult(w io.Writer, r *verify.Result) {
	if len(r.Verified) == 0 && len(r.Failures) == 0 {
		fmt.Fprintf(w, "  no signatures\n")
	}
	for _, m := range r.Verified {
		fmt.Fprintf(w, "  verified: key %s, covers %s (%s, %s layer %d)\n", m.Key, m.Digest, m.Format, m.Source, m.Layer)
	}
	for _, f := range r.Failures {
		by := ""
		if f.Key != "" {
			by = ", signed by key " + f.Key
		}
		fmt.Fprintf(w, "  NOT verified: %s (%s layer %d%s)\n", f.Reason(), f.Source, f.Layer, by)
	}
}
