package decision

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// BenchmarkDecide10kRules is the node decision (namespace, allow list,
// bundle) for a signed image in a covered namespace, with 10,000 exemptions
// and 10,000 revocations in the bundle, none of which applies. It reports
// the p50 and p99 of single decisions.
//
//	go test -run '^$' -bench BenchmarkDecide10kRules -benchmem ./pkg/decision/
func BenchmarkDecide10kRules(b *testing.B) {
	now := time.Now()
	bundle := policy.NewBundle("rules")
	sigs := signedBy{}
	signedDigest := fmt.Sprintf("sha256:%064x", 0xabc)
	for i := range 10 {
		fp := fmt.Sprintf("sha256:%064x", 0xf0000+i)
		must(b, bundle.AddWitness(&policy.Witness{Name: fmt.Sprintf("w%d", i), Keys: []*policy.Key{{Fingerprint: fp}}}))
		sigs[signedDigest] = append(sigs[signedDigest], fp)
	}
	ns := make([]string, 1000)
	for i := range ns {
		ns[i] = fmt.Sprintf("ns-%d", i)
		must(b, bundle.AddPolicy(&policy.SecurityPolicy{Name: fmt.Sprintf("p%d", i), Witnesses: []string{fmt.Sprintf("w%d", i%10), fmt.Sprintf("w%d", (i+1)%10)},
			Threshold: 2, Clusters: []string{"c1"}, Namespaces: []string{ns[i]}, Enabled: true, Mode: policy.Enforce}))
	}
	for i := range 10000 {
		must(b, bundle.AddExemption(&policy.Exemption{Name: fmt.Sprintf("e%d", i), Namespace: ns[i%1000],
			ImageDigest: fmt.Sprintf("sha256:%064x", 0xe0000000+i), Expires: now.Add(time.Hour), Reason: "bench"}))
		must(b, bundle.AddRevocation(&policy.Revocation{Name: fmt.Sprintf("r%d", i), ImageDigests: []string{fmt.Sprintf("sha256:%064x", 0xc0000000+i)},
			ConfigDigests: []string{fmt.Sprintf("sha256:%064x", 0xb0000000+i)}, Effective: now.Add(-time.Hour), Reason: "bench"}))
	}
	d := &Decider{Node: Node{Cluster: "c1", Allowlists: policy.Allowlists{"kube-system": {signedDigest}}}, Bundle: bundle,
		Signatures: sigs, Now: func() time.Time { return now }}
	candidates := []string{fmt.Sprintf("sha256:%064x", 0xabd), signedDigest}
	cfg := fmt.Sprintf("sha256:%064x", 0xcf9)
	d.Judge(policy.Subject{Namespace: ns[0], ImageDigests: candidates}) // the bundle indexes itself on first use

	lat := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := policy.Subject{Namespace: ns[i%len(ns)], Pod: "web", ConfigDigest: cfg, ImageDigests: candidates, PulledDigest: signedDigest}
		start := time.Now()
		v := d.Judge(s)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
		if !v.Allowed() || v.Kind != policy.RulePolicy {
			b.Fatal(v)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
