//go:build !nodeonly

package cli

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/sign"
)

// checkOwnSignature verifies sig against the public half of the key that made
// it, before anything is pushed: a mis-encoded KMS answer (wrong padding,
// truncated, another key version) would otherwise be stored and then refused
// by every node.
func checkOwnSignature(ctx context.Context, signer keys.Signer, sig *sign.Signature) error {
	pub, err := signer.PublicKey(ctx)
	if err != nil {
		return err
	}
	info := signer.Info()
	sum := sha256.Sum256(sig.Payload)
	if err := keys.VerifyDigest(pub, info.Algorithm, sum[:], sig.Signature); err != nil {
		return fmt.Errorf("refusing to push the signature of %s: it does not verify with the public key of %s%s (%s): %w; "+
			"nothing was pushed: check --signature-algorithm and that the key service answers for this key version",
			sig.Image.DigestStr(), info.Ref, versionSuffix(info), info.Algorithm, err)
	}
	return nil
}

// versionSuffix names the KMS key version, empty for local keys.
func versionSuffix(info keys.Info) string {
	if info.KeyVersionID == "" {
		return ""
	}
	return " version " + info.KeyVersionID
}

// printKeyWarnings writes what the key provider wants the signer's user to
// know, e.g. that an unversioned KMS reference picked one of several versions.
func printKeyWarnings(w io.Writer, signer keys.Signer) {
	if ws, ok := signer.(interface{ Warnings() []string }); ok {
		for _, m := range ws.Warnings() {
			fmt.Fprintf(w, "warning: %s\n", m)
		}
	}
}
