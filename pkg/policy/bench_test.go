package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	benchPolicies   = 10000
	benchNamespaces = 10000
	benchWitnesses  = 10
)

var (
	benchOnce sync.Once
	benchText []byte
	benchFPs  []string
)

// bigBundle renders a bundle with 10,000 enabled policies over 10,000
// namespaces of 2 clusters: policy i covers namespaces ns-i and ns-(7i+1 mod N)
// with 2 of 3 witnesses. With wildcards, 10 more policies cover every
// namespace of cluster c1, so each lookup merges several lists.
func bigBundle(b *testing.B, wildcards bool) []byte {
	b.Helper()
	benchOnce.Do(func() {
		var sb strings.Builder
		sb.WriteString("apiVersion: nri-csig.io/v1alpha1\nkind: PolicyBundle\nmetadata: {name: big}\nspec: {serial: 1}\n")
		for i := range benchWitnesses {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			p, _ := EncodePublicKeyPEM(&k.PublicKey)
			fp, _ := Fingerprint(&k.PublicKey)
			benchFPs = append(benchFPs, fp)
			fmt.Fprintf(&sb, "---\napiVersion: nri-csig.io/v1alpha1\nkind: Witness\nmetadata: {name: w%d}\nspec:\n  keys:\n    - publicKey: |\n        %s\n",
				i, strings.ReplaceAll(strings.TrimSpace(p), "\n", "\n        "))
		}
		for i := range benchPolicies {
			fmt.Fprintf(&sb, "---\napiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: p%d}\nspec: {witnesses: [w%d, w%d, w%d], threshold: 2, clusters: [c%d], namespaces: [ns-%d, ns-%d], enabled: true}\n",
				i, i%benchWitnesses, (i+1)%benchWitnesses, (i+2)%benchWitnesses, 1+i%2, i, (7*i+1)%benchNamespaces)
		}
		benchText = []byte(sb.String())
	})
	if !wildcards {
		return benchText
	}
	var sb strings.Builder
	sb.Write(benchText)
	for i := range 10 {
		fmt.Fprintf(&sb, "---\napiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: star%d}\nspec: {witnesses: [w%d], clusters: [c1], namespaces: [\"*\"], enabled: true, mode: audit}\n", i, i)
	}
	return []byte(sb.String())
}

func benchBundle(b *testing.B, wildcards bool) *Bundle {
	b.Helper()
	bundle, err := ParseBundle("big.yaml", bigBundle(b, wildcards))
	if err != nil {
		b.Fatal(err)
	}
	if len(bundle.Policies) < benchPolicies {
		b.Fatalf("%d policies", len(bundle.Policies))
	}
	return bundle
}

var nsNames = func() []string {
	ns := make([]string, benchNamespaces)
	for i := range ns {
		ns[i] = fmt.Sprintf("ns-%d", i)
	}
	return ns
}()

// BenchmarkEvaluate looks up the policies covering one of 10,000 namespaces
// in a bundle of 10,000 policies: the per-container matching cost.
func BenchmarkEvaluate(b *testing.B) {
	for _, wild := range []bool{false, true} {
		b.Run(fmt.Sprintf("wildcards=%t", wild), func(b *testing.B) {
			bundle := benchBundle(b, wild)
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; b.Loop(); i++ {
				n += len(bundle.Covering("c1", nsNames[i%benchNamespaces]))
			}
			if n == 0 {
				b.Fatal("no policy ever covered")
			}
		})
	}
}

// BenchmarkDecide is the full decision for a signed image: revocations,
// coverage, exemptions and the thresholds of every covering policy.
func BenchmarkDecide(b *testing.B) {
	for _, wild := range []bool{false, true} {
		b.Run(fmt.Sprintf("wildcards=%t", wild), func(b *testing.B) {
			bundle := benchBundle(b, wild)
			sigs := SignedBy{dA: benchFPs}
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r := bundle.Decide(Request{Cluster: "c1", Subject: Subject{Namespace: nsNames[i%benchNamespaces], ImageDigests: []string{dA}},
					Signatures: sigs, Now: now})
				if !r.Verdict.Allowed() {
					b.Fatal(r.Verdict)
				}
			}
		})
	}
}

// BenchmarkParseBundle10k parses the 10,000-policy bundle: the cost of a reload.
func BenchmarkParseBundle10k(b *testing.B) {
	data := bigBundle(b, false)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBundle("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// longListBundle renders a bundle whose one policy lists n namespaces.
func longListBundle(n int) []byte {
	var sb strings.Builder
	sb.WriteString("apiVersion: nri-csig.io/v1alpha1\nkind: PolicyBundle\nmetadata: {name: long}\nspec: {serial: 1}\n")
	sb.WriteString("---\napiVersion: nri-csig.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: p}\nspec:\n  witnesses: [w]\n  clusters: [c1]\n  enabled: true\n  namespaces:\n")
	for i := range n {
		fmt.Fprintf(&sb, "    - ns-%d\n", i)
	}
	return []byte(sb.String())
}

// BenchmarkParseLongList parses one policy listing 1k, 10k, 100k and 120k
// namespaces: de-duplicating the list must stay linear in its length (ns/op
// grows ~10x from 10k to 100k, not ~100x). The bundle has no witness
// document, so ParseBundle reports the dangling witness after parsing every
// list entry; the cost measured is the list's.
func BenchmarkParseLongList(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 120_000} {
		data := longListBundle(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				_, err := ParseBundle("long.yaml", data)
				if err == nil || strings.Contains(err.Error(), "listed twice") {
					b.Fatalf("ParseBundle = %v; want only the dangling witness refused", err)
				}
			}
		})
	}
}
