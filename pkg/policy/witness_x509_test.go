package policy

import (
	"crypto/x509/pkix"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/x509test"
)

const buildIdentity = "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=build"

// x509Bundle is a bundle with one x509 witness whose spec.x509 is body
// (indented by four spaces), and a policy that requires it.
func x509Bundle(body string) string {
	return `apiVersion: nri-csig.io/v1alpha1
kind: PolicyBundle
metadata:
  name: fleet
spec:
  serial: 1
---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata:
  name: notary
spec:
  kind: x509
  description: release CA
  x509:
` + indent(body, "    ") + `---
apiVersion: nri-csig.io/v1alpha1
kind: SecurityPolicy
metadata:
  name: prod
spec:
  witnesses: [notary]
  clusters: ["*"]
  namespaces: ["*"]
  enabled: true
`
}

func indent(s, by string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(by + l)
		}
	}
	return b.String()
}

// pemField renders a PEM value as a YAML block scalar under a field.
func pemField(field string, pem []byte) string {
	return field + ": |\n" + indent(string(pem), "  ")
}

func TestX509WitnessParsesAndRoundTrips(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	tsa := x509test.NewCA(t, "TSA root")
	body := pemField("caCertificates", x509test.PEM(ca.Cert)) + pemField("tsaCertificates", x509test.PEM(tsa.Cert)) +
		"trustedIdentities:\n  - \"" + buildIdentity + "\"\nverifyTimestamp: afterCertExpiry\nrevocation: skip\n"
	b, err := ParseBundle("bundle.yaml", []byte(x509Bundle(body)))
	if err != nil {
		t.Fatal(err)
	}
	w := b.Witnesses[0]
	if w.Kind != WitnessX509 || w.X509 == nil || len(w.Keys) != 1 {
		t.Fatalf("witness = %+v", w)
	}
	k := w.Keys[0]
	if !regexp.MustCompile(`^x509:sha256:[0-9a-f]{64}$`).MatchString(k.Fingerprint) || k.Kind != WitnessX509 || k.X509 != w.X509 || k.PublicKey != nil {
		t.Fatalf("key = %+v", k)
	}
	tr := w.X509
	if len(tr.CACertificates) != 1 || !tr.CACertificates[0].Equal(ca.Cert) || len(tr.TSACertificates) != 1 ||
		tr.VerifyTimestamp != X509TimestampAfterCertExpiry || tr.Revocation != X509RevocationSkip || tr.TrustedIdentities[0] != buildIdentity {
		t.Fatalf("trust = %+v", tr)
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseBundle("again.yaml", out)
	if err != nil {
		t.Fatalf("marshalled bundle does not parse: %v\n%s", err, out)
	}
	if got := again.Witnesses[0].Keys[0].Fingerprint; got != k.Fingerprint {
		t.Errorf("ID after round trip %s, want %s", got, k.Fingerprint)
	}
	if ks := again.KeysFor("c1", "default", time.Now()); len(ks) != 1 || ks[0].Fingerprint != k.Fingerprint {
		t.Errorf("KeysFor = %v, want the witness's trust", ks)
	}
}

func TestX509TrustIDDependsOnTheTrustOnly(t *testing.T) {
	ca, other := x509test.NewCA(t, "a"), x509test.NewCA(t, "b")
	mk := func(ids []string, cas ...[]byte) string {
		tr, err := NewX509Trust([]byte(strings.Join(bytesToStrings(cas), "")), nil, ids, "")
		if err != nil {
			t.Fatal(err)
		}
		return tr.ID()
	}
	a, b := x509test.PEM(ca.Cert), x509test.PEM(other.Cert)
	if mk([]string{"*"}, a, b) != mk([]string{"*"}, b, a) {
		t.Error("the ID depends on the order of the CA certificates")
	}
	if mk([]string{"*"}, a) == mk([]string{"*"}, b) {
		t.Error("two CAs have one ID")
	}
	if mk([]string{"*"}, a) == mk([]string{buildIdentity}, a) {
		t.Error("two identities have one ID")
	}
}

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func TestX509WitnessErrors(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	leaf := ca.Leaf(t, pkix.Name{CommonName: "build"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	caPEM := pemField("caCertificates", x509test.PEM(ca.Cert))
	ids := "trustedIdentities: [\"" + buildIdentity + "\"]\n"
	tests := map[string]struct{ body, want string }{
		"no CA":             {ids, "spec.x509.caCertificates: required field is missing"},
		"not PEM":           {"caCertificates: nope\n" + ids, "is not PEM"},
		"a key, not a cert": {pemField("caCertificates", x509test.KeyPEM(t, ca.Key)) + ids, `is a "PRIVATE KEY"; give CERTIFICATE blocks only`},
		"a leaf, not a CA":  {pemField("caCertificates", x509test.PEM(leaf.Cert)) + ids, "neither a CA certificate nor a self-signed signing certificate"},
		"TSA not a root":    {caPEM + pemField("tsaCertificates", x509test.PEM(leaf.Cert)) + ids, "TSA certificate 1 (CN=build) is not a root CA certificate"},
		"no identities":     {caPEM, "spec.x509.trustedIdentities: required field is missing"},
		"empty identities":  {caPEM + "trustedIdentities: []\n", "trustedIdentities: list must not be empty"},
		"bare DN":           {caPEM + "trustedIdentities: [\"C=CN, ST=Zhejiang, O=Example\"]\n", `write "x509.subject: C=<country>`},
		"DN lacks ST":       {caPEM + "trustedIdentities: [\"x509.subject: C=CN, O=Example\"]\n", "lacks ST; notation requires C, ST (or S) and O"},
		"DN repeats":        {caPEM + "trustedIdentities: [\"x509.subject: C=CN, ST=Z, O=A, O=B\"]\n", "names O more than once"},
		"wildcard and more": {caPEM + "trustedIdentities: [\"*\", \"" + buildIdentity + "\"]\n", `"*" trusts any certificate`},
		"revocation ocsp":   {caPEM + ids + "revocation: ocsp\n", `"ocsp" is not supported: the node decides with no network`},
		"timestamp no TSA":  {caPEM + ids + "verifyTimestamp: always\n", "verifyTimestamp: needs tsaCertificates"},
		"timestamp unknown": {caPEM + pemField("tsaCertificates", x509test.PEM(ca.Cert)) + ids + "verifyTimestamp: never\n", `"never" is not a timestamp option`},
		"unknown field":     {caPEM + ids + "trustStore: x\n", "spec.x509.trustStore: unknown field"},
		"keys section too":  {caPEM + ids, ""}, // replaced below
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			text := x509Bundle(tc.body)
			if name == "keys section too" {
				text = strings.Replace(text, "  kind: x509\n", "  kind: x509\n  keys: []\n", 1)
				tc.want = "a witness of kind x509 has no keys section"
			}
			_, err := ParseBundle("bundle.yaml", []byte(text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestX509TrustInTwoWitnessesRefused(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	text := x509Bundle(pemField("caCertificates", x509test.PEM(ca.Cert)) + "trustedIdentities: [\"*\"]\n")
	second := text[strings.Index(text, "---\napiVersion: nri-csig.io/v1alpha1\nkind: Witness"):strings.Index(text, "---\napiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy")]
	text += strings.Replace(second, "name: notary", "name: copy", 1)
	_, err := ParseBundle("bundle.yaml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), `is already a key of witness "notary"`) {
		t.Fatalf("got %v", err)
	}
}

func TestNewX509TrustChecks(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	if _, err := NewX509Trust(x509test.PEM(ca.Cert), nil, []string{buildIdentity}, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ids  []string
		ts   string
		want string
	}{
		{nil, "", "no trusted identity"},
		{[]string{buildIdentity, buildIdentity}, "", "given twice"},
		{[]string{"x509.subject: CN=build"}, "", "lacks C, ST, O"},
		{[]string{"*"}, "always", "needs TSA certificates"},
	} {
		if _, err := NewX509Trust(x509test.PEM(ca.Cert), nil, c.ids, c.ts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %q: got %v, want %q", c.ids, c.ts, err, c.want)
		}
	}
}

func TestX509WitnessesThatOverlapRefused(t *testing.T) {
	ca, other := x509test.NewCA(t, "shared CA"), x509test.NewCA(t, "other CA")
	witness := func(name string, c *x509test.CA, ids ...string) string {
		return `---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata:
  name: ` + name + `
spec:
  kind: x509
  x509:
` + indent(pemField("caCertificates", x509test.PEM(c.Cert))+"trustedIdentities: [\""+strings.Join(ids, "\", \"")+"\"]\n", "    ")
	}
	head := "apiVersion: nri-csig.io/v1alpha1\nkind: PolicyBundle\nmetadata:\n  name: fleet\nspec:\n  serial: 1\n"
	teamA := "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=team-a"
	teamB := "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=team-b"
	org := "x509.subject: C=CN, ST=Zhejiang, O=Example"
	for _, c := range []struct {
		name string
		a, b string
		ok   bool
	}{
		{"one CA, identities that differ in CN", witness("a", ca, teamA), witness("b", ca, teamB), true},
		{"two CAs, one identity", witness("a", ca, teamA), witness("b", other, teamA), true},
		{"one CA, wildcard", witness("a", ca, "*"), witness("b", ca, teamB), false},
		{"one CA, an identity and its subset", witness("a", ca, org), witness("b", ca, teamB), false},
	} {
		_, err := ParseBundle("bundle.yaml", []byte(head+c.a+c.b))
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), `is also trusted by witness "a"`)):
			t.Errorf("%s: got %v, want the overlap refused", c.name, err)
		}
	}
}

// A Revocation of an x509 witness's ID takes its trust out of KeysFor.
func TestX509WitnessRevokedByID(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	text := x509Bundle(pemField("caCertificates", x509test.PEM(ca.Cert)) + "trustedIdentities: [\"*\"]\n")
	b, err := ParseBundle("bundle.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	id := b.Witnesses[0].Keys[0].Fingerprint
	text += `---
apiVersion: nri-csig.io/v1alpha1
kind: Revocation
metadata:
  name: compromised
spec:
  keys: ["` + id + `"]
  effective: "2020-01-01T00:00:00Z"
  reason: signing certificate key leaked
`
	b, err = ParseBundle("bundle.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if ks := b.KeysFor("c1", "default", time.Now()); len(ks) != 0 {
		t.Fatalf("KeysFor = %v after the revocation of %s", ks, id)
	}
}
