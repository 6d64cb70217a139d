package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SigstoreTrust is what a witness of kind sigstore trusts: keyless Sigstore
// signatures (cosign v3 bundles) whose Fulcio certificate chains to its
// trusted root and names one of its identities.
//
// This package checks the shape (std lib only); pkg/keyless compiles the
// trusted root with sigstore-go when the bundle is applied, and refuses
// the witness (its signatures then never count) if it does not load.
type SigstoreTrust struct {
	// TrustedRoot is a Sigstore trusted_root.json document (Fulcio CAs,
	// Rekor logs, CT logs, timestamp authorities), as text.
	TrustedRoot string
	// Identities: a signature counts when its certificate matches one.
	Identities []SigstoreIdentity
	// InsecureIgnoreSCT accepts certificates without an SCT from the
	// trusted root's CT logs (cosign's --insecure-ignore-sct).
	InsecureIgnoreSCT bool
	// InsecureIgnoreTlog accepts bundles without a transparency-log entry
	// verified against the trusted root's Rekor logs; the signing time then
	// must come from an RFC 3161 timestamp (cosign's --insecure-ignore-tlog).
	InsecureIgnoreTlog bool
}

// SigstoreIdentity is one trusted signer: the certificate's OIDC issuer
// and its subject alternative name (an email or a URI such as a GitHub
// workflow), each given exactly or as an anchored regular expression.
type SigstoreIdentity struct {
	Issuer        string `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	IssuerRegExp  string `json:"issuerRegExp,omitempty" yaml:"issuerRegExp,omitempty"`
	Subject       string `json:"subject,omitempty" yaml:"subject,omitempty"`
	SubjectRegExp string `json:"subjectRegExp,omitempty" yaml:"subjectRegExp,omitempty"`
}

// SigstoreTrustedRootMediaType is the trusted root format accepted.
const SigstoreTrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

// Bounds on one sigstore witness. The public-good trusted root is about
// 7 KB (20-odd certificates and keys with their history); a bundle as a
// whole is bounded by MaxBundleSize.
const (
	maxTrustedRootSize = 512 << 10
	maxIdentities      = 64
	maxIdentityLen     = 1024
)

// ID is the trust ID, the witness's synthetic key fingerprint: the SHA-256
// of the compacted trusted root, the sorted identities and the switches.
func (t *SigstoreTrust) ID() string {
	var root bytes.Buffer
	if json.Compact(&root, []byte(t.TrustedRoot)) != nil {
		root.Reset()
		root.WriteString(t.TrustedRoot)
	}
	ids := make([]string, len(t.Identities))
	for i, id := range t.Identities {
		b, _ := json.Marshal(id)
		ids[i] = string(b)
	}
	slices.Sort(ids)
	canonical, _ := json.Marshal(struct {
		TrustedRoot        json.RawMessage `json:"trustedRoot"`
		Identities         []string        `json:"identities"`
		InsecureIgnoreSCT  bool            `json:"insecureIgnoreSCT"`
		InsecureIgnoreTlog bool            `json:"insecureIgnoreTlog"`
	}{json.RawMessage(jsonString(root.String())), ids, t.InsecureIgnoreSCT, t.InsecureIgnoreTlog})
	return trustID(WitnessSigstore, canonical)
}

// jsonString quotes s as a JSON string (so that an invalid root still hashes).
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Check reports the first problem of t, with what to do; nil when the
// bundle parser would accept it. The CLI checks what it writes with it.
func (t *SigstoreTrust) Check() error {
	if msg := checkTrustedRoot(t.TrustedRoot, t); msg != "" {
		return fmt.Errorf("trustedRoot: %s", msg)
	}
	if msg := checkIdentityCount(len(t.Identities)); msg != "" {
		return fmt.Errorf("identities: %s", msg)
	}
	for i, id := range t.Identities {
		for _, f := range id.fields() {
			if msg := f.check(); msg != "" {
				return fmt.Errorf("identities[%d].%s: %s", i, f.name, msg)
			}
		}
		if msg := id.checkPairs(); msg != "" {
			return fmt.Errorf("identities[%d]: %s", i, msg)
		}
	}
	return nil
}

// identityExample says what an identity looks like, for fix-it messages.
const identityExample = "name who signs, e.g. {issuer: https://token.actions.githubusercontent.com, subjectRegExp: '^https://github\\.com/ORG/REPO/\\.github/workflows/release\\.yml@refs/tags/v.*$'}"

func checkIdentityCount(n int) string {
	switch {
	case n == 0:
		return "list must not be empty; " + identityExample
	case n > maxIdentities:
		return fmt.Sprintf("%d identities, more than the %d allowed; use a regular expression", n, maxIdentities)
	}
	return ""
}

// checkTrustedRoot checks the shape of a trusted_root.json: a JSON object
// of the right media type, with the Fulcio CAs keyless certificates chain
// to, and the logs the witness's switches require.
func checkTrustedRoot(s string, t *SigstoreTrust) string {
	const fix = "paste the trusted_root.json of your Sigstore instance (see docs/POLICY.md: 'cosign trusted-root create', or the public-good one fetched through TUF on a connected machine)"
	if strings.TrimSpace(s) == "" {
		return "required; " + fix
	}
	if len(s) > maxTrustedRootSize {
		return fmt.Sprintf("%d bytes, more than the %d allowed for a trusted root", len(s), maxTrustedRootSize)
	}
	var doc struct {
		MediaType              string            `json:"mediaType"`
		Tlogs                  []json.RawMessage `json:"tlogs"`
		CertificateAuthorities []json.RawMessage `json:"certificateAuthorities"`
		Ctlogs                 []json.RawMessage `json:"ctlogs"`
		TimestampAuthorities   []json.RawMessage `json:"timestampAuthorities"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return fmt.Sprintf("not a JSON trusted root (%v); %s", err, fix)
	}
	switch {
	case doc.MediaType != SigstoreTrustedRootMediaType:
		return fmt.Sprintf("mediaType %q, want %q; %s", doc.MediaType, SigstoreTrustedRootMediaType, fix)
	case len(doc.CertificateAuthorities) == 0:
		return "no certificateAuthorities: keyless certificates cannot chain to it; use a trusted root with the Fulcio CA"
	case len(doc.Tlogs) == 0 && !t.InsecureIgnoreTlog:
		return "no tlogs (Rekor keys): transparency-log inclusion cannot be checked; use a trusted root with them, or set insecureIgnoreTlog: true"
	case len(doc.Ctlogs) == 0 && !t.InsecureIgnoreSCT:
		return "no ctlogs (CT log keys): the certificates' SCTs cannot be checked; use a trusted root with them, or set insecureIgnoreSCT: true"
	case t.InsecureIgnoreTlog && len(doc.TimestampAuthorities) == 0:
		return "no timestampAuthorities, and insecureIgnoreTlog leaves no other signing time: no signature could verify; keep the transparency log or add a TSA"
	}
	return ""
}

// identityField is one of an identity's four strings.
type identityField struct {
	name, value string
	regexp      bool
}

func (id SigstoreIdentity) fields() []identityField {
	return []identityField{{"issuer", id.Issuer, false}, {"issuerRegExp", id.IssuerRegExp, true},
		{"subject", id.Subject, false}, {"subjectRegExp", id.SubjectRegExp, true}}
}

func (f identityField) check() string {
	switch {
	case f.value == "":
		return ""
	case len(f.value) > maxIdentityLen:
		return fmt.Sprintf("%d characters, more than the %d allowed", len(f.value), maxIdentityLen)
	case strings.TrimSpace(f.value) != f.value:
		return "has leading or trailing spaces; remove them"
	case !f.regexp:
		return ""
	}
	if _, err := regexp.Compile(f.value); err != nil {
		return fmt.Sprintf("not a regular expression (Go syntax): %v", err)
	}
	if !strings.HasPrefix(f.value, "^") || !strings.HasSuffix(f.value, "$") {
		// Unanchored, "^https://github.com/org/" also matches
		// "https://github.com/org-evil/...", and "org/repo" anything containing it.
		return fmt.Sprintf("must be anchored, ^...$, so that it matches the whole value; write %q", anchor(f.value))
	}
	return ""
}

func anchor(re string) string {
	if !strings.HasPrefix(re, "^") {
		re = "^" + re
	}
	if !strings.HasSuffix(re, "$") {
		re += "$"
	}
	return re
}

// checkPairs: exactly one of issuer and issuerRegExp, and of subject and subjectRegExp.
func (id SigstoreIdentity) checkPairs() string {
	switch {
	case id.Issuer == "" && id.IssuerRegExp == "":
		return "no issuer; give issuer (the OIDC issuer, e.g. https://token.actions.githubusercontent.com or https://accounts.google.com) or issuerRegExp"
	case id.Issuer != "" && id.IssuerRegExp != "":
		return "both issuer and issuerRegExp; keep one"
	case id.Subject == "" && id.SubjectRegExp == "":
		return "no subject; give subject (the certificate's SAN: an email, or a workflow URI) or subjectRegExp"
	case id.Subject != "" && id.SubjectRegExp != "":
		return "both subject and subjectRegExp; keep one"
	}
	return ""
}

func (p *parser) sigstoreTrust(n *yaml.Node, path string) *SigstoreTrust {
	m := p.fields(n, path, "trustedRoot", "identities", "insecureIgnoreSCT", "insecureIgnoreTlog")
	if m == nil {
		return nil
	}
	before := len(p.errs)
	t := &SigstoreTrust{
		TrustedRoot:        p.str(m, "trustedRoot", path, true, n),
		InsecureIgnoreSCT:  p.boolean(m, "insecureIgnoreSCT", path),
		InsecureIgnoreTlog: p.boolean(m, "insecureIgnoreTlog", path),
	}
	if rn, ok := m["trustedRoot"]; ok && len(p.errs) == before {
		if msg := checkTrustedRoot(t.TrustedRoot, t); msg != "" {
			p.errorf(rn, join(path, "trustedRoot"), "%s", msg)
		}
	}
	in, ok := m["identities"]
	switch {
	case !ok:
		p.errorf(n, join(path, "identities"), "required field is missing; %s", identityExample)
	case in.Kind != yaml.SequenceNode:
		p.errorf(in, join(path, "identities"), "expected a list, found %s", kindName(in))
	case checkIdentityCount(len(in.Content)) != "":
		p.errorf(in, join(path, "identities"), "%s", checkIdentityCount(len(in.Content)))
	default:
		seen := map[SigstoreIdentity]bool{}
		for i, e := range in.Content {
			ip := fmt.Sprintf("%s.identities[%d]", path, i)
			im := p.fields(e, ip, "issuer", "issuerRegExp", "subject", "subjectRegExp")
			if im == nil {
				continue
			}
			id := SigstoreIdentity{Issuer: p.str(im, "issuer", ip, false, e), IssuerRegExp: p.str(im, "issuerRegExp", ip, false, e),
				Subject: p.str(im, "subject", ip, false, e), SubjectRegExp: p.str(im, "subjectRegExp", ip, false, e)}
			bad := false
			for _, f := range id.fields() {
				if msg := f.check(); msg != "" {
					p.errorf(im[f.name], join(ip, f.name), "%s", msg)
					bad = true
				}
			}
			if msg := id.checkPairs(); msg != "" {
				p.errorf(e, ip, "%s", msg)
				bad = true
			}
			if !bad && seen[id] {
				p.errorf(e, ip, "the same identity is listed twice; keep one")
				bad = true
			}
			seen[id] = true
			if !bad {
				t.Identities = append(t.Identities, id)
			}
		}
	}
	if len(p.errs) != before {
		return nil
	}
	return t
}

// sigstoreOut is the YAML form of t.
func sigstoreOut(t *SigstoreTrust) any {
	if t == nil {
		return nil
	}
	return struct {
		TrustedRoot        string             `yaml:"trustedRoot"`
		Identities         []SigstoreIdentity `yaml:"identities"`
		InsecureIgnoreSCT  bool               `yaml:"insecureIgnoreSCT,omitempty"`
		InsecureIgnoreTlog bool               `yaml:"insecureIgnoreTlog,omitempty"`
	}{t.TrustedRoot, t.Identities, t.InsecureIgnoreSCT, t.InsecureIgnoreTlog}
}

// NewSigstoreWitness returns a witness of kind sigstore named name that
// trusts t, after the checks the bundle parser makes.
func NewSigstoreWitness(name, description string, t *SigstoreTrust) (*Witness, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("witness %q: sigstore.%w", name, err)
	}
	return &Witness{Name: name, Description: description, Kind: WitnessSigstore, Sigstore: t,
		Keys: []*Key{{Witness: name, Kind: WitnessSigstore, Sigstore: t, Fingerprint: t.ID()}}}, nil
}
