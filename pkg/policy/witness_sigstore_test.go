package policy

import (
	"os"
	"strings"
	"testing"
)

// publicGoodRoot is sigstore-go's copy of the public-good trusted root.
func publicGoodRoot(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../keyless/testdata/public-good-trusted-root.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func indentBy(s, by string) string {
	return by + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+by)
}

// sigstoreBundle is a bundle with one sigstore witness whose sigstore
// section is section (already indented by four spaces), and a policy
// that requires it.
func sigstoreBundle(section string) []byte {
	return []byte(`apiVersion: nri-csig.io/v1alpha1
kind: PolicyBundle
metadata: {name: fleet}
spec: {serial: 1}
---
apiVersion: nri-csig.io/v1alpha1
kind: Witness
metadata: {name: k8s-releng}
spec:
  description: Kubernetes release images
  kind: sigstore
  sigstore:
` + section + `
---
apiVersion: nri-csig.io/v1alpha1
kind: SecurityPolicy
metadata: {name: system}
spec:
  witnesses: [k8s-releng]
  clusters: [c1]
  namespaces: [kube-system]
  enabled: true
`)
}

func trustSection(t testing.TB, extra string) string {
	return "    trustedRoot: |\n" + indentBy(publicGoodRoot(t), "      ") + "\n" + extra
}

const krel = `    identities:
      - issuer: https://accounts.google.com
        subject: krel-trust@k8s-releng-prod.iam.gserviceaccount.com
      - issuer: https://token.actions.githubusercontent.com
        subjectRegExp: ^https://github\.com/kubernetes/release/\.github/workflows/.+@refs/tags/v.*$
`

func TestSigstoreWitnessParses(t *testing.T) {
	b, err := ParseBundle("b.yaml", sigstoreBundle(trustSection(t, krel)))
	if err != nil {
		t.Fatal(err)
	}
	w := b.Witnesses[0]
	if w.Kind != WitnessSigstore || w.Sigstore == nil || len(w.Keys) != 1 {
		t.Fatalf("witness = %+v", w)
	}
	k := w.Keys[0]
	if k.Kind != WitnessSigstore || k.Sigstore != w.Sigstore || k.PublicKey != nil || !strings.HasPrefix(k.Fingerprint, "sigstore:sha256:") || !ValidKeyID(k.Fingerprint) {
		t.Fatalf("synthetic key = %+v", k)
	}
	want := []SigstoreIdentity{
		{Issuer: "https://accounts.google.com", Subject: "krel-trust@k8s-releng-prod.iam.gserviceaccount.com"},
		{Issuer: "https://token.actions.githubusercontent.com", SubjectRegExp: `^https://github\.com/kubernetes/release/\.github/workflows/.+@refs/tags/v.*$`},
	}
	if len(w.Sigstore.Identities) != 2 || w.Sigstore.Identities[0] != want[0] || w.Sigstore.Identities[1] != want[1] {
		t.Fatalf("identities = %+v", w.Sigstore.Identities)
	}
	if w.Sigstore.InsecureIgnoreSCT || w.Sigstore.InsecureIgnoreTlog {
		t.Fatal("the insecure switches are on by default")
	}
	if len(b.Policies) != 1 || b.Policies[0].Witnesses[0] != "k8s-releng" {
		t.Fatalf("policies = %+v", b.Policies)
	}

	// Marshal and parse again: the same trust, the same ID.
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle("again.yaml", out)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	if got := b2.Witnesses[0].Keys[0].Fingerprint; got != k.Fingerprint {
		t.Fatalf("trust ID after a round trip %s, want %s", got, k.Fingerprint)
	}
	if strings.Contains(string(out), "keys:") {
		t.Errorf("a sigstore witness was marshalled with keys:\n%s", out)
	}
}

// The trust ID changes with anything trusted, and not with the order of
// identities or the trusted root's whitespace.
func TestSigstoreTrustID(t *testing.T) {
	root := publicGoodRoot(t)
	base := SigstoreTrust{TrustedRoot: root, Identities: []SigstoreIdentity{{Issuer: "i", Subject: "a"}, {Issuer: "i", Subject: "b"}}}
	same := base
	same.Identities = []SigstoreIdentity{base.Identities[1], base.Identities[0]}
	same.TrustedRoot = strings.ReplaceAll(root, "\n", "\n  ")
	if base.ID() != same.ID() {
		t.Error("identity order or whitespace changed the ID")
	}
	for name, mod := range map[string]func(*SigstoreTrust){
		"subject": func(t *SigstoreTrust) {
			t.Identities = []SigstoreIdentity{{Issuer: "i", Subject: "c"}, t.Identities[1]}
		},
		"regexp": func(t *SigstoreTrust) {
			t.Identities = []SigstoreIdentity{{Issuer: "i", SubjectRegExp: "a"}, t.Identities[1]}
		},
		"root": func(t *SigstoreTrust) {
			t.TrustedRoot = strings.Replace(root, "https://rekor.sigstore.dev", "https://rekor.example", 1)
		},
		"no SCT":    func(t *SigstoreTrust) { t.InsecureIgnoreSCT = true },
		"no tlog":   func(t *SigstoreTrust) { t.InsecureIgnoreTlog = true },
		"fewer ids": func(t *SigstoreTrust) { t.Identities = t.Identities[:1] },
	} {
		other := base
		other.Identities = append([]SigstoreIdentity(nil), base.Identities...)
		mod(&other)
		if other.ID() == base.ID() {
			t.Errorf("%s: the ID did not change", name)
		}
	}
}

func TestSigstoreWitnessRefused(t *testing.T) {
	ok := func(s string) string { return trustSection(t, s) }
	for name, tc := range map[string]struct{ section, want string }{
		"no trusted root":   {krel, `spec.sigstore.trustedRoot: required field is missing`},
		"not json":          {"    trustedRoot: 'hello'\n" + krel, `spec.sigstore.trustedRoot: not a JSON trusted root`},
		"wrong media type":  {"    trustedRoot: '{\"mediaType\": \"x\"}'\n" + krel, `mediaType "x", want "application/vnd.dev.sigstore.trustedroot+json;version=0.1"`},
		"no fulcio":         {"    trustedRoot: '{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json;version=0.1\", \"tlogs\": [{}], \"ctlogs\": [{}]}'\n" + krel, `no certificateAuthorities`},
		"no tlogs":          {"    trustedRoot: '{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json;version=0.1\", \"certificateAuthorities\": [{}], \"ctlogs\": [{}]}'\n" + krel, `no tlogs (Rekor keys)`},
		"no ctlogs":         {"    trustedRoot: '{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json;version=0.1\", \"certificateAuthorities\": [{}], \"tlogs\": [{}]}'\n" + krel, `or set insecureIgnoreSCT: true`},
		"no tlog no tsa":    {"    trustedRoot: '{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json;version=0.1\", \"certificateAuthorities\": [{}], \"ctlogs\": [{}]}'\n    insecureIgnoreTlog: true\n" + krel, `no timestampAuthorities, and insecureIgnoreTlog`},
		"no identities":     {ok(""), `spec.sigstore.identities: required field is missing; name who signs`},
		"empty identities":  {ok("    identities: []\n"), `identities: list must not be empty`},
		"no issuer":         {ok("    identities:\n      - subject: a@b.c\n"), `identities[0]: no issuer; give issuer`},
		"no subject":        {ok("    identities:\n      - issuer: https://accounts.google.com\n"), `identities[0]: no subject; give subject`},
		"both subjects":     {ok("    identities:\n      - {issuer: i, subject: a, subjectRegExp: '^a$'}\n"), `both subject and subjectRegExp; keep one`},
		"both issuers":      {ok("    identities:\n      - {issuer: i, issuerRegExp: '^i$', subject: a}\n"), `both issuer and issuerRegExp; keep one`},
		"bad regexp":        {ok("    identities:\n      - {issuer: i, subjectRegExp: '^(a$'}\n"), `subjectRegExp: not a regular expression`},
		"unanchored":        {ok("    identities:\n      - {issuer: i, subjectRegExp: 'https://github.com/org/'}\n"), `must be anchored, ^...$, so that it matches the whole value; write "^https://github.com/org/$"`},
		"unanchored issuer": {ok("    identities:\n      - {issuerRegExp: '^https://.*', subject: a}\n"), `issuerRegExp: must be anchored`},
		"unknown field":     {ok("    identities:\n      - {issuer: i, subject: a, email: x}\n"), `identities[0].email: unknown field`},
		"duplicate":         {ok("    identities:\n      - {issuer: i, subject: a}\n      - {issuer: i, subject: a}\n"), `identities[1]: the same identity is listed twice`},
		"spaces":            {ok("    identities:\n      - {issuer: ' i', subject: a}\n"), `identities[0].issuer: has leading or trailing spaces`},
		"not bool":          {ok(krel + "    insecureIgnoreSCT: 'yes'\n"), `insecureIgnoreSCT: expected true or false`},
		"unknown section":   {ok(krel + "    rekorURL: https://rekor.sigstore.dev\n"), `spec.sigstore.rekorURL: unknown field`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBundle("b.yaml", sigstoreBundle(tc.section))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseBundle: %v\nwant an error with %q", err, tc.want)
			}
		})
	}
}

// The same trust material in two witnesses is refused, like a key in two.
func TestSigstoreTrustInTwoWitnesses(t *testing.T) {
	doc := string(sigstoreBundle(trustSection(t, krel)))
	second := doc[strings.Index(doc, "---\napiVersion: nri-csig.io/v1alpha1\nkind: Witness"):strings.Index(doc, "---\napiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy")]
	doc += strings.Replace(second, "k8s-releng", "copy", 1)
	_, err := ParseBundle("b.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), `is already a key of witness "k8s-releng"`) {
		t.Fatalf("ParseBundle: %v", err)
	}
}

func TestNewSigstoreWitness(t *testing.T) {
	tr := &SigstoreTrust{TrustedRoot: publicGoodRoot(t), Identities: []SigstoreIdentity{{Issuer: "https://accounts.google.com", Subject: "a@b.c"}}}
	w, err := NewSigstoreWitness("w", "", tr)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBundle("b")
	b.Touch()
	if err := b.AddWitness(w); err != nil {
		t.Fatal(err)
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle("b.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b2.Witnesses[0].Keys[0].Fingerprint != tr.ID() {
		t.Fatal("the parsed witness has another trust ID")
	}
	if _, err := NewSigstoreWitness("w", "", &SigstoreTrust{TrustedRoot: tr.TrustedRoot, Identities: []SigstoreIdentity{{Issuer: "i", SubjectRegExp: "x"}}}); err == nil ||
		!strings.Contains(err.Error(), `witness "w": sigstore.identities[0].subjectRegExp: must be anchored`) {
		t.Fatalf("unanchored regexp: %v", err)
	}
}
