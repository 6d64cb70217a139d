//go:build !nodeonly

package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// maxTrustedRootFile bounds the trusted_root.json read (the bundle parser
// applies its own, smaller, limit).
const maxTrustedRootFile = 1 << 20

// sigstoreFlags are the flags of a keyless Sigstore witness: one trusted
// root and one identity (edit the bundle file for more identities).
type sigstoreFlags struct {
	trustedRoot            string
	issuer, issuerRegExp   string
	subject, subjectRegExp string
	ignoreSCT, ignoreTlog  bool
	// fingerprint is the trust ID of the key built by key.
	fingerprint string
}

const sigstoreFlagsHelp = `
Keyless Sigstore (--kind sigstore on witness create, or --trusted-root on verify):
  --trusted-root FILE    a trusted_root.json (Fulcio CAs, Rekor, CT logs, TSAs): from
                         'cosign trusted-root create', or public-good Sigstore's, fetched
                         once through TUF on a connected machine (see docs/POLICY.md)
  --issuer / --issuer-regexp     the certificate's OIDC issuer, exact or ^anchored$ regexp
  --subject / --subject-regexp   the certificate's SAN (email or URI), exact or ^anchored$
  Verification is offline: the certificate must chain to the trusted root, carry an SCT,
  and the bundle must prove transparency-log inclusion with a signing time inside the
  certificate's validity (--insecure-ignore-sct / --insecure-ignore-tlog relax that).
`

func (f *sigstoreFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "keyless Sigstore: trusted_root.json file")
	fs.StringVar(&f.issuer, "issuer", "", "keyless Sigstore: the certificate's OIDC issuer, exactly")
	fs.StringVar(&f.issuerRegExp, "issuer-regexp", "", "keyless Sigstore: the certificate's OIDC issuer, as an anchored regular expression (^...$)")
	fs.StringVar(&f.subject, "subject", "", "keyless Sigstore: the certificate's subject alternative name (email or URI), exactly")
	fs.StringVar(&f.subjectRegExp, "subject-regexp", "", "keyless Sigstore: the certificate's subject alternative name, as an anchored regular expression (^...$)")
	fs.BoolVar(&f.ignoreSCT, "insecure-ignore-sct", false, "keyless Sigstore: accept certificates without a verified SCT")
	fs.BoolVar(&f.ignoreTlog, "insecure-ignore-tlog", false, "keyless Sigstore: accept bundles without verified transparency-log inclusion (an RFC 3161 timestamp must then give the signing time)")
	_ = cmd.MarkFlagFilename("trusted-root", "json")
}

// used reports whether any keyless flag was given.
func (f *sigstoreFlags) used() bool {
	return f.trustedRoot != "" || f.issuer != "" || f.issuerRegExp != "" || f.subject != "" || f.subjectRegExp != "" || f.ignoreSCT || f.ignoreTlog
}

// witness reads the trusted root and returns the witness the flags
// describe, after the bundle parser's checks.
func (f *sigstoreFlags) witness(name, description string) (*policy.Witness, error) {
	if f.trustedRoot == "" {
		return nil, errors.New("--trusted-root is required for a keyless Sigstore witness: give the trusted_root.json of your Sigstore instance")
	}
	fh, err := os.Open(f.trustedRoot)
	if err != nil {
		return nil, fmt.Errorf("--trusted-root: %w", err)
	}
	defer fh.Close()
	root, err := io.ReadAll(io.LimitReader(fh, maxTrustedRootFile+1))
	if err != nil {
		return nil, fmt.Errorf("--trusted-root: %w", err)
	}
	if len(root) > maxTrustedRootFile {
		return nil, fmt.Errorf("--trusted-root %s: more than %d bytes; it is not a trusted_root.json", f.trustedRoot, maxTrustedRootFile)
	}
	t := &policy.SigstoreTrust{
		TrustedRoot: string(root),
		Identities: []policy.SigstoreIdentity{{Issuer: f.issuer, IssuerRegExp: f.issuerRegExp,
			Subject: f.subject, SubjectRegExp: f.subjectRegExp}},
		InsecureIgnoreSCT:  f.ignoreSCT,
		InsecureIgnoreTlog: f.ignoreTlog,
	}
	w, err := policy.NewSigstoreWitness(name, description, t)
	if err != nil {
		return nil, fmt.Errorf("%w (flags: --trusted-root, --issuer[-regexp], --subject[-regexp])", err)
	}
	return w, nil
}

// printSigstore shows a keyless witness: its trust ID and identities.
func printSigstore(out io.Writer, w *policy.Witness) {
	t := w.Sigstore
	fmt.Fprintf(out, "Kind:         sigstore (keyless)\nTrust:        %s\n", w.Keys[0].Fingerprint)
	for i, id := range t.Identities {
		issuer, subject := id.Issuer, id.Subject
		if id.IssuerRegExp != "" {
			issuer = "regexp " + id.IssuerRegExp
		}
		if id.SubjectRegExp != "" {
			subject = "regexp " + id.SubjectRegExp
		}
		fmt.Fprintf(out, "Identity %d:\n  Issuer:       %s\n  Subject:      %s\n", i, issuer, subject)
	}
	if t.InsecureIgnoreSCT {
		fmt.Fprintf(out, "SCT:          not required (insecureIgnoreSCT)\n")
	}
	if t.InsecureIgnoreTlog {
		fmt.Fprintf(out, "Tlog:         not required (insecureIgnoreTlog)\n")
	}
	fmt.Fprintf(out, "Trusted root: %d bytes\n", len(t.TrustedRoot))
}
