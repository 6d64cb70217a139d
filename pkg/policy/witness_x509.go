package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// X509Trust is what a witness of kind x509 trusts: Notary Project (notation)
// signatures whose certificate chain leads to one of its CA certificates and
// whose signing certificate's subject matches one of its trusted identities,
// as notation's trust policy defines them.
//
// Revocation (OCSP, CRL) is not checked: the node decides with no network on
// the decision path. A compromised signing certificate is revoked by a new
// bundle: revoke the witness's ID, or replace its CA certificates.
type X509Trust struct {
	// CACertificatesPEM are the trust store's certificates as written in the
	// bundle: CA certificates, or self-signed signing certificates (what
	// "notation cert generate-test" makes), as notation's "ca" trust store
	// accepts them.
	CACertificatesPEM string
	CACertificates    []*x509.Certificate
	// TSACertificatesPEM, optional, are root CA certificates of RFC 3161
	// timestamping authorities. With them, a signature must carry a
	// timestamp from one of them (VerifyTimestamp says when).
	TSACertificatesPEM string
	TSACertificates    []*x509.Certificate
	// TrustedIdentities are notation trusted identities: "x509.subject: <DN>",
	// where the DN names at least C, ST (or S) and O and the signing
	// certificate's subject must include all its attributes, or "*" alone
	// (any certificate the trust store issued).
	TrustedIdentities []string
	// VerifyTimestamp, with TSA certificates only: X509TimestampAlways (the
	// default) or X509TimestampAfterCertExpiry.
	VerifyTimestamp string
	// Revocation is X509RevocationSkip, the only mode: revocation is not
	// checked on the node.
	Revocation string
}

// Values of X509Trust.VerifyTimestamp and X509Trust.Revocation.
const (
	X509TimestampAlways          = "always"
	X509TimestampAfterCertExpiry = "afterCertExpiry"
	X509RevocationSkip           = "skip"
)

// maxX509Certificates bounds the certificates of one trust store.
const maxX509Certificates = 64

// ID is "x509:sha256:<hex>" of a canonical encoding of the trust: the CA
// and TSA certificates (DER, sorted), the trusted identities (sorted) and the
// timestamp option. Two witnesses with the same trust have the same ID.
func (t *X509Trust) ID() string {
	var b []byte
	field := func(v []byte) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
		b = append(b, v...)
	}
	certs := func(label string, cs []*x509.Certificate) {
		ders := make([][]byte, len(cs))
		for i, c := range cs {
			ders[i] = c.Raw
		}
		slices.SortFunc(ders, bytes.Compare)
		field(fmt.Appendf(nil, "%s %d", label, len(ders)))
		for _, d := range ders {
			field(d)
		}
	}
	field([]byte("nri-csig x509 witness v1"))
	certs("ca", t.CACertificates)
	certs("tsa", t.TSACertificates)
	ids := slices.Clone(t.TrustedIdentities)
	slices.Sort(ids)
	field(fmt.Appendf(nil, "identities %d", len(ids)))
	for _, id := range ids {
		field([]byte(id))
	}
	field([]byte("verifyTimestamp " + t.timestampOption()))
	return trustID(WitnessX509, b)
}

// timestampOption is VerifyTimestamp with its default, "" without TSAs.
func (t *X509Trust) timestampOption() string {
	switch {
	case len(t.TSACertificates) == 0:
		return ""
	case t.VerifyTimestamp == "":
		return X509TimestampAlways
	}
	return t.VerifyTimestamp
}

// x509Trust parses spec.x509 of a witness of kind x509.
func (p *parser) x509Trust(n *yaml.Node, path string) *X509Trust {
	m := p.fields(n, path, "caCertificates", "tsaCertificates", "trustedIdentities", "verifyTimestamp", "revocation")
	if m == nil {
		return nil
	}
	t := &X509Trust{
		CACertificatesPEM:  p.str(m, "caCertificates", path, true, n),
		TSACertificatesPEM: p.str(m, "tsaCertificates", path, false, n),
		VerifyTimestamp:    p.str(m, "verifyTimestamp", path, false, n),
		Revocation:         p.str(m, "revocation", path, false, n),
	}
	ids, idNodes := p.strList(m, "trustedIdentities", path, true, n)
	ok := t.CACertificatesPEM != "" && ids != nil
	if t.CACertificatesPEM != "" {
		certs, err := ParseX509TrustStore([]byte(t.CACertificatesPEM), false)
		if err != nil {
			p.errorf(m["caCertificates"], join(path, "caCertificates"), "%v", err)
			ok = false
		}
		t.CACertificates = certs
	}
	if t.TSACertificatesPEM != "" {
		certs, err := ParseX509TrustStore([]byte(t.TSACertificatesPEM), true)
		if err != nil {
			p.errorf(m["tsaCertificates"], join(path, "tsaCertificates"), "%v", err)
			ok = false
		}
		t.TSACertificates = certs
	}
	for i, id := range ids {
		if err := CheckTrustedIdentity(id, len(ids)); err != nil {
			p.errorf(idNodes[i], fmt.Sprintf("%s.trustedIdentities[%d]", path, i), "%v", err)
			ok = false
		}
	}
	if len(ids) == 0 {
		ok = false // reported by strList
	}
	t.TrustedIdentities = ids
	switch t.VerifyTimestamp {
	case "":
	case X509TimestampAlways, X509TimestampAfterCertExpiry:
		if t.TSACertificatesPEM == "" {
			p.errorf(m["verifyTimestamp"], join(path, "verifyTimestamp"), "needs tsaCertificates; drop the field or add the TSA root certificates")
			ok = false
		}
	default:
		p.errorf(m["verifyTimestamp"], join(path, "verifyTimestamp"), "%q is not a timestamp option; use %q or %q",
			t.VerifyTimestamp, X509TimestampAlways, X509TimestampAfterCertExpiry)
		ok = false
	}
	switch t.Revocation {
	case "":
		t.Revocation = X509RevocationSkip
	case X509RevocationSkip:
	default:
		p.errorf(m["revocation"], join(path, "revocation"),
			"%q is not supported: the node decides with no network, so OCSP and CRL are not checked; use %q (or drop the field), and revoke a signer through the bundle (revocation of this witness, or new CA certificates)",
			t.Revocation, X509RevocationSkip)
		ok = false
	}
	if !ok {
		return nil
	}
	return t
}

// NewX509Trust builds the trust of a witness of kind x509 from PEM files'
// contents, with the checks the bundle parser makes (for the CLI).
// verifyTimestamp may be empty.
func NewX509Trust(caPEM, tsaPEM []byte, identities []string, verifyTimestamp string) (*X509Trust, error) {
	t := &X509Trust{CACertificatesPEM: string(caPEM), TSACertificatesPEM: string(tsaPEM),
		TrustedIdentities: identities, VerifyTimestamp: verifyTimestamp, Revocation: X509RevocationSkip}
	var err error
	if t.CACertificates, err = ParseX509TrustStore(caPEM, false); err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if len(tsaPEM) > 0 {
		if t.TSACertificates, err = ParseX509TrustStore(tsaPEM, true); err != nil {
			return nil, fmt.Errorf("TSA certificates: %w", err)
		}
	}
	if len(identities) == 0 {
		return nil, fmt.Errorf(`no trusted identity; give the signing certificates' subjects ("x509.subject: C=..., ST=..., O=..., CN=...") or "*"`)
	}
	for i, id := range identities {
		if slices.Contains(identities[:i], id) {
			return nil, fmt.Errorf("trusted identity %q is given twice; keep one", id)
		}
		if err := CheckTrustedIdentity(id, len(identities)); err != nil {
			return nil, err
		}
	}
	switch verifyTimestamp {
	case "":
	case X509TimestampAlways, X509TimestampAfterCertExpiry:
		if len(tsaPEM) == 0 {
			return nil, fmt.Errorf("a timestamp option needs TSA certificates")
		}
	default:
		return nil, fmt.Errorf("%q is not a timestamp option; use %q or %q", verifyTimestamp, X509TimestampAlways, X509TimestampAfterCertExpiry)
	}
	return t, nil
}

// ParseX509TrustStore reads PEM CERTIFICATE blocks for an x509 witness with
// notation's trust store rules: each certificate is a CA certificate or a
// self-signed signing certificate; TSA certificates (tsa) must be root
// (self-signed) CA certificates.
func ParseX509TrustStore(b []byte, tsa bool) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("certificate %d is not PEM; give PEM CERTIFICATE blocks, one after the other", len(certs)+1)
		}
		rest = bytes.TrimSpace(rest)
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q; give CERTIFICATE blocks only (no keys)", len(certs)+1, block.Type)
		}
		if len(certs) == maxX509Certificates {
			return nil, fmt.Errorf("more than %d certificates; a trust store holds its root CAs, not a whole chain", maxX509Certificates)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		selfSigned := bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
		if tsa && (!c.IsCA || !selfSigned) {
			return nil, fmt.Errorf("TSA certificate %d (%s) is not a root CA certificate; give the timestamping authority's root CA", len(certs)+1, c.Subject)
		}
		if !c.IsCA && !selfSigned {
			return nil, fmt.Errorf("certificate %d (%s) is neither a CA certificate nor a self-signed signing certificate; give the CA that issued the signing certificates", len(certs)+1, c.Subject)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificates; give at least one PEM CERTIFICATE block")
	}
	return certs, nil
}

// ParseCertificateChainPEM reads a signing certificate chain: PEM
// CERTIFICATE blocks, the signing certificate first, then its issuers.
func ParseCertificateChainPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("entry %d is not a PEM CERTIFICATE block; give the signing certificate, then its issuers", len(certs)+1)
		}
		if len(certs) == maxX509Certificates {
			return nil, fmt.Errorf("more than %d certificates in the chain", maxX509Certificates)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificates")
	}
	return certs, nil
}

// CheckTrustedIdentity checks one of n trusted identities in notation's
// form: "*" (then alone), or "x509.subject: <DN>" whose DN names C, ST (or
// S) and O, as notation requires.
func CheckTrustedIdentity(id string, n int) error {
	if id == "*" {
		if n > 1 {
			return fmt.Errorf(`"*" trusts any certificate the CAs issued, so it must be the only trusted identity; drop the others or drop "*"`)
		}
		return nil
	}
	prefix, dn, found := strings.Cut(id, ":")
	if !found || strings.TrimSpace(prefix) != "x509.subject" {
		return fmt.Errorf(`%q is not a trusted identity; write "x509.subject: C=<country>, ST=<state>, O=<organization>[, CN=<name>]" (the signing certificate's subject) or "*"`, id)
	}
	attrs, err := parseDN(dn)
	if err != nil {
		return fmt.Errorf("%q: %v", id, err)
	}
	var missing []string
	if attrs["C"] == 0 {
		missing = append(missing, "C")
	}
	if attrs["ST"] == 0 && attrs["S"] == 0 {
		missing = append(missing, "ST")
	}
	if attrs["O"] == 0 {
		missing = append(missing, "O")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%q lacks %s; notation requires C, ST (or S) and O at least, e.g. \"x509.subject: C=CN, ST=Zhejiang, O=Example, CN=build\"", id, strings.Join(missing, ", "))
	}
	for a, k := range attrs {
		if k > 1 {
			return fmt.Errorf("%q names %s more than once; notation refuses repeated attributes", id, a)
		}
	}
	return nil
}

// parseDN splits an RFC 4514 distinguished name into its attribute types,
// counted. Escaped commas (\,) stay inside values.
func parseDN(dn string) (map[string]int, error) {
	attrs, err := dnAttributes(dn)
	if err != nil {
		return nil, err
	}
	count := make(map[string]int, len(attrs))
	for typ, vals := range attrs {
		count[typ] = len(vals)
	}
	return count, nil
}

// dnAttributes is a distinguished name's values by (upper-cased) type.
func dnAttributes(dn string) (map[string][]string, error) {
	dn = strings.TrimSpace(dn)
	if dn == "" {
		return nil, fmt.Errorf("the distinguished name is empty")
	}
	var parts []string
	start := 0
	for i := 0; i < len(dn); i++ {
		switch dn[i] {
		case '\\':
			i++
		case ',', '+':
			parts = append(parts, dn[start:i])
			start = i + 1
		}
	}
	parts = append(parts, dn[start:])
	attrs := map[string][]string{}
	for _, part := range parts {
		typ, val, ok := strings.Cut(part, "=")
		typ, val = strings.ToUpper(strings.TrimSpace(typ)), strings.TrimSpace(val)
		if !ok || typ == "" || val == "" {
			return nil, fmt.Errorf("%q is not an attribute=value pair of a distinguished name", strings.TrimSpace(part))
		}
		if typ == "S" {
			typ = "ST" // notation's alias
		}
		attrs[typ] = append(attrs[typ], val)
	}
	return attrs, nil
}

// x509Seen is an x509 witness already parsed.
type x509Seen struct {
	witness string
	trust   *X509Trust
}

// x509Distinct refuses an x509 witness that would accept a signature
// another one accepts: one CA certificate in both, and trusted identities
// that one signing certificate could match both (neither names an attribute
// the other names with another value). pkg/verify credits a signature to
// one witness only, so such a pair would make a policy that needs the second
// refuse what its trust accepts.
func (p *parser) x509Distinct(witness string, t *X509Trust, n *yaml.Node, path string) bool {
	for _, o := range p.x509s {
		if o.trust.ID() == t.ID() {
			continue // the same trust twice: uniqueKey refuses it
		}
		ca := sharedCA(t, o.trust)
		if ca == nil {
			continue
		}
		if a, b, ok := overlappingIdentities(t.TrustedIdentities, o.trust.TrustedIdentities); ok {
			p.errorf(n, path, "CA %s is also trusted by witness %q, and a signing certificate can match both %q and %q there: one signature could not count for both; merge the two witnesses, or give them identities that differ in an attribute (e.g. CN)",
				ca.Subject, o.witness, a, b)
			return false
		}
	}
	p.x509s = append(p.x509s, x509Seen{witness, t})
	return true
}

func sharedCA(a, b *X509Trust) *x509.Certificate {
	for _, c := range a.CACertificates {
		for _, d := range b.CACertificates {
			if c.Equal(d) {
				return c
			}
		}
	}
	return nil
}

// overlappingIdentities returns a pair of trusted identities, one of each
// list, that one certificate subject can match both.
func overlappingIdentities(as, bs []string) (string, string, bool) {
	for _, a := range as {
		for _, b := range bs {
			if a == "*" || b == "*" {
				return a, b, true
			}
			da, errA := dnAttributes(strings.SplitN(a, ":", 2)[1])
			db, errB := dnAttributes(strings.SplitN(b, ":", 2)[1])
			if errA != nil || errB != nil {
				continue // refused elsewhere
			}
			if !conflicting(da, db) {
				return a, b, true
			}
		}
	}
	return "", "", false
}

// conflicting reports whether two DNs name one attribute with other values,
// so that no subject includes both.
func conflicting(a, b map[string][]string) bool {
	for typ, va := range a {
		if vb, ok := b[typ]; ok && !slices.Equal(va, vb) {
			return true
		}
	}
	return false
}

// x509Out is spec.x509 as written by Marshal.
func x509Out(t *X509Trust) any {
	if t == nil {
		return nil
	}
	type out struct {
		CACertificates    string   `yaml:"caCertificates"`
		TSACertificates   string   `yaml:"tsaCertificates,omitempty"`
		TrustedIdentities []string `yaml:"trustedIdentities"`
		VerifyTimestamp   string   `yaml:"verifyTimestamp,omitempty"`
		Revocation        string   `yaml:"revocation"`
	}
	rev := t.Revocation
	if rev == "" {
		rev = X509RevocationSkip
	}
	return out{CACertificates: t.CACertificatesPEM, TSACertificates: t.TSACertificatesPEM,
		TrustedIdentities: t.TrustedIdentities, VerifyTimestamp: t.VerifyTimestamp, Revocation: rev}
}

// SetX509Trust replaces the trust of witness name, of kind x509: how its CA
// certificates or identities are rotated while the policies naming it stay.
// The witness's ID changes with its trust (a revocation of the old ID no
// longer matches it).
func (b *Bundle) SetX509Trust(name string, t *X509Trust) error {
	i := b.findWitness(name)
	if i < 0 {
		return fmt.Errorf("witness %q not found; 'nri-csig witness list' shows the witnesses", name)
	}
	w := b.Witnesses[i]
	if w.Kind != WitnessX509 {
		return fmt.Errorf("witness %q is of kind %s, not x509; rotate its trust with the commands of its kind (witness add-key / remove-key for keys)", name, w.Kind)
	}
	id := t.ID()
	if o := b.keyByFP[id]; o != nil && o.Witness != name {
		return fmt.Errorf("trust %s is already witness %q's; a trust may belong to one witness only", id, o.Witness)
	}
	w.X509 = t
	w.Keys = []*Key{{Witness: name, Kind: WitnessX509, X509: t, Fingerprint: id}}
	b.reindex()
	return nil
}
