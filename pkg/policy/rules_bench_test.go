package policy

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// rulesBundle is a bundle with 10,000 exemptions and 10,000 revocations
// (100 of them of keys) over 1,000 policies of 10 witnesses: what a
// decision must look through on a busy node.
func rulesBundle(tb testing.TB, now time.Time) (*Bundle, SignedBy) {
	tb.Helper()
	b := NewBundle("rules")
	sigs := SignedBy{}
	for i := range 10 {
		fp := fmt.Sprintf("sha256:%064x", 0xf0000+i)
		if err := b.AddWitness(&Witness{Name: fmt.Sprintf("w%d", i), Keys: []*Key{{Fingerprint: fp}}}); err != nil {
			tb.Fatal(err)
		}
		sigs[benchSigned] = append(sigs[benchSigned], fp)
	}
	for i := range 1000 {
		if err := b.AddPolicy(&SecurityPolicy{Name: fmt.Sprintf("p%d", i), Witnesses: []string{fmt.Sprintf("w%d", i%10), fmt.Sprintf("w%d", (i+1)%10)},
			Threshold: 2, Clusters: []string{"c1"}, Namespaces: []string{fmt.Sprintf("ns-%d", i)}, Enabled: true, Mode: Enforce}); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range 10000 {
		e := &Exemption{Name: fmt.Sprintf("e%d", i), Namespace: fmt.Sprintf("ns-%d", i%1000), Expires: now.Add(time.Hour), Reason: "bench"}
		if i%10 == 0 {
			e.Pod = fmt.Sprintf("pod-%d", i)
		} else {
			e.ImageDigest = fmt.Sprintf("sha256:%064x", 0xe0000000+i)
		}
		if err := b.AddExemption(e); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range 10000 {
		r := &Revocation{Name: fmt.Sprintf("r%d", i), Effective: now.Add(-time.Hour), Reason: "bench"}
		if i < 100 {
			r.Keys = []string{fmt.Sprintf("sha256:%064x", 0xd0000+i)}
		} else {
			r.ImageDigests = []string{fmt.Sprintf("sha256:%064x", 0xc0000000+i)}
		}
		if err := b.AddRevocation(r); err != nil {
			tb.Fatal(err)
		}
	}
	return b, sigs
}

var benchSigned = fmt.Sprintf("sha256:%064x", 0xabc)

// reportPercentiles times f once per iteration and reports p50 and p99.
func reportPercentiles(b *testing.B, f func(i int)) {
	lat := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		f(i)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkDecideRules10k is the bundle's decision for a signed image in a
// covered namespace, with 10,000 exemptions and 10,000 revocations in the
// bundle, none of which applies: every one must be ruled out.
//
//	go test -run '^$' -bench BenchmarkDecideRules10k -benchmem ./pkg/policy/
func BenchmarkDecideRules10k(b *testing.B) {
	now := time.Now()
	bundle, sigs := rulesBundle(b, now)
	cfg := fmt.Sprintf("sha256:%064x", 0xcf9)
	candidates := []string{fmt.Sprintf("sha256:%064x", 0xabd), benchSigned}
	ns := make([]string, 1000)
	for i := range ns {
		ns[i] = fmt.Sprintf("ns-%d", i)
	}
	b.ReportAllocs()
	reportPercentiles(b, func(i int) {
		r := bundle.Decide(Request{Cluster: "c1", Signatures: sigs, Now: now,
			Subject: Subject{Namespace: ns[i%len(ns)], Pod: "web", ConfigDigest: cfg, ImageDigests: candidates}})
		if !r.Verdict.Allowed() {
			b.Fatal(r.Verdict)
		}
	})
}
