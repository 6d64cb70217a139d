package policy

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseBundle feeds arbitrary bytes to the parser, which reads what
// registries and mounted volumes deliver. It must never panic, and whatever
// it accepts must be a consistent bundle that survives Marshal unchanged.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(fill(f, strings.Replace(strings.Replace(validBundle, "{{RSA}}", "{{PEM3}}", 1), "    - algorithm: RSA_PSS_SHA_256\n      publicKey", "    - publicKey", 1))))
	f.Add([]byte("apiVersion: nri-csig.io/v1alpha1\nkind: PolicyBundle\nmetadata: {name: x}\nspec: {serial: 1}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("apiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: p}\nspec: {witnesses: [w], threshold: 99999999999999999999}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle("fuzz.yaml", data)
		if err != nil {
			return
		}
		if b.Serial < 1 {
			t.Fatalf("accepted serial %d", b.Serial)
		}
		for _, p := range b.Policies {
			if p.Threshold < 1 || p.Threshold > len(p.Witnesses) {
				t.Fatalf("policy %q: threshold %d of %d accepted", p.Name, p.Threshold, len(p.Witnesses))
			}
			for _, w := range p.Witnesses {
				if b.Witness(w) == nil {
					t.Fatalf("policy %q: dangling witness %q accepted", p.Name, w)
				}
			}
			if p.Mode != Enforce && p.Mode != Audit {
				t.Fatalf("policy %q: mode %q accepted", p.Name, p.Mode)
			}
		}
		for _, w := range b.Witnesses {
			if len(w.Keys) == 0 {
				t.Fatalf("witness %q without keys accepted", w.Name)
			}
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted bundle: %v", err)
		}
		b2, err := ParseBundle("marshaled.yaml", out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		out2, err := b2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not stable (%v):\n%s\n---\n%s", err, out, out2)
		}
		for _, p := range b.Policies {
			for _, c := range p.Clusters {
				for _, ns := range p.Namespaces {
					if p.Enabled && !containsPolicy(b.Covering(c, ns), p) {
						t.Fatalf("enabled policy %q does not cover (%s, %s) it names", p.Name, c, ns)
					}
				}
			}
		}
	})
}

func containsPolicy(ps []*SecurityPolicy, p *SecurityPolicy) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
