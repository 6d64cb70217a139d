//go:build !nodeonly

package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/sign"
)

// DefaultKMSQPS paces "sign --from-file". Alibaba Cloud documents the shared
// gateway's AsymmetricSign limit per account as 200/s (older docs; 750/s in
// 2025); half the lower figure leaves room for other signers of the account.
const DefaultKMSQPS = 100

// maxFromFile bounds how many digests one --from-file run signs.
const maxFromFile = 100000

// fromFileOptions are the flags of "sign --from-file".
type fromFileOptions struct {
	path string
	qps  float64
}

const fromFileHelp = `
Re-signing many digests (--from-file FILE): FILE lists image references by
digest, one per line (REPO@sha256:HEX; blank lines and # comments are skipped),
e.g. the digests that run today when migrating from kritis. Each is signed with
the one --key, checked against the key's public half and attached, paced to at
most --kms-qps signatures a second (KMS AsymmetricSign is rate-limited per
account), with one progress line per digest. A digest that fails is reported and
the run goes on; a key failure (credentials, disabled key, KMS unreachable, a
signature that does not verify) stops it. --timeout bounds each digest, not the whole run. The exit code is 1
when any digest failed.
`

func (o *fromFileOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.path, "from-file", "", "sign every image digest listed in FILE (one REPO@sha256:HEX per line) instead of IMAGE")
	cmd.Flags().Float64Var(&o.qps, "kms-qps", DefaultKMSQPS, "with --from-file: at most this many signatures a second")
	_ = cmd.MarkFlagFilename("from-file")
}

// readDigestList reads a --from-file list: every entry must name a digest.
func readDigestList(path string) ([]name.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out  []name.Digest
		bad  []string
		line int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if len(out) >= maxFromFile {
			return nil, fmt.Errorf("%s: more than %d digests; split the list", path, maxFromFile)
		}
		ref, err := registry.ParseReference(s)
		d, ok := ref.(name.Digest)
		if err != nil || !ok {
			bad = append(bad, fmt.Sprintf("line %d: %q is not REPO@sha256:HEX", line, s))
			continue
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: %d entries name no digest (tags are never re-signed: resolve them first):\n  %s", path, len(bad), strings.Join(bad, "\n  "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no digest", path)
	}
	return out, nil
}

// runFromFile signs every digest of the list with one key.
func (o *signOptions) runFromFile(cmd *cobra.Command) error {
	var ann map[string]string
	for _, a := range o.annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("--annotation %q: want key=value", a)
		}
		if ann == nil {
			ann = map[string]string{}
		}
		ann[k] = v
	}
	if o.fromFile.qps <= 0 {
		return errors.New("--kms-qps must be positive")
	}
	if o.platform != "" {
		return errors.New("--platform cannot be used with --from-file: list the platform manifests' digests")
	}
	digests, err := readDigestList(o.fromFile.path)
	if err != nil {
		return err
	}
	target, override, err := o.sigRepo.repository(cmd)
	if err != nil {
		return err
	}
	if !override {
		target = name.Repository{}
	}
	ctx := cmd.Context()
	openCtx, cancel := o.registry.context(cmd)
	signer, err := o.key.Open(openCtx)
	cancel()
	if err != nil {
		return err
	}
	printKeyWarnings(cmd.ErrOrStderr(), signer)
	info := signer.Info()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Signing %d digests with %s%s (%s), at most %g a second\n", len(digests), info.Ref, versionSuffix(info), info.Algorithm, o.fromFile.qps)

	client, err := o.registry.client() // one handshake per repository for the run
	if err != nil {
		return err
	}
	pace := newPacer(o.fromFile.qps)
	start := time.Now()
	var failed []string
	for i, d := range digests {
		if err := pace.wait(ctx); err != nil {
			return fmt.Errorf("stopped after %d of %d digests: %w", i, len(digests), err)
		}
		err := o.signOne(cmd, client, signer, d, target, ann)
		if err != nil && isKeyFailure(err) {
			return fmt.Errorf("[%d/%d] %s: %w; stopped: the key fails for every digest (%d signed before)", i+1, len(digests), d, err, i-len(failed))
		}
		if err != nil {
			failed = append(failed, d.String())
			fmt.Fprintf(out, "[%d/%d] FAILED %s: %v\n", i+1, len(digests), d, err)
			continue
		}
		fmt.Fprintf(out, "[%d/%d] signed %s\n", i+1, len(digests), d)
	}
	took := time.Since(start).Round(time.Millisecond)
	fmt.Fprintf(out, "Signed %d of %d digests in %s with %s%s\n", len(digests)-len(failed), len(digests), took, info.KeyID, versionSuffix(info))
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d digests were not signed:\n  %s", len(failed), strings.Join(failed, "\n  "))}
	}
	return nil
}

// signOne signs and attaches one digest, within --timeout, into target
// (the zero repository: the image's own).
func (o *signOptions) signOne(cmd *cobra.Command, client *registry.Client, signer keys.Signer, d name.Digest, target name.Repository, ann map[string]string) error {
	ctx, cancel := o.registry.context(cmd)
	defer cancel()
	repo, err := client.Repo(ctx, d.Context(), true)
	if err != nil {
		return err
	}
	if _, err := repo.Head(ctx, d.DigestStr(), registry.ImageMediaTypes); err != nil && !errors.Is(err, registry.ErrNoDigest) {
		return fmt.Errorf("not found in the registry: %w", err)
	}
	sig, err := sign.Digest(ctx, signer, d, ann)
	if err != nil {
		return err
	}
	if err := checkOwnSignature(ctx, signer, sig); err != nil {
		return fmt.Errorf("%w (%w)", err, keys.ErrInvalidSignature)
	}
	if (target == name.Repository{}) {
		target = d.Context()
	} else if repo, err = client.Repo(ctx, target, true); err != nil {
		return err
	}
	if err := sign.AttachTo(ctx, sig, target, repo.RemoteOptions(ctx)...); err != nil {
		return fmt.Errorf("attaching to %s: %w", sign.SignatureTag(sig, target), err)
	}
	return nil
}

// isKeyFailure reports errors that every further digest would hit too.
func isKeyFailure(err error) bool {
	for _, class := range []error{keys.ErrAuth, keys.ErrKeyDisabled, keys.ErrKeyNotFound, keys.ErrUnsupportedKey, keys.ErrUnavailable, keys.ErrInvalidSignature} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}

// pacer spaces calls at least 1/qps apart.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(qps float64) *pacer {
	return &pacer{interval: time.Duration(float64(time.Second) / qps)}
}

func (p *pacer) wait(ctx context.Context) error {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		now = p.next
	}
	p.next = now.Add(p.interval)
	return nil
}

// signArgs wants one IMAGE, or none with --from-file.
func signArgs(o *fromFileOptions) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if o.path != "" {
			if len(args) != 0 {
				return fmt.Errorf("give IMAGE or --from-file, not both")
			}
			return nil
		}
		return cobra.ExactArgs(1)(cmd, args)
	}
}
