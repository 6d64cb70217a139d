//go:build integration

package cosign

import (
	"testing"
	"time"
)

// BenchmarkVerifyVsCosign runs "nri-csig verify --key" and "cosign verify
// --key" on the same signed image in the same loopback registry, each a
// fresh process per iteration (what an operator runs), and reports the mean
// wall time of each and their ratio (cosign/nri-csig).
//
//	go test -tags integration -run '^$' -bench VerifyVsCosign -benchtime 20x ./integration/cosign
func BenchmarkVerifyVsCosign(b *testing.B) {
	for _, format := range []string{"legacy", "bundle"} {
		b.Run(format, func(b *testing.B) {
			host := startRegistry(b, false)
			priv, pub := cosignKeyPair(b, "ecdsa")
			tag, digestRef := pushImage(b, host, "bench", randomImage(b))
			args := append(append([]string{}, cosignSignFlags...), "--key", priv)
			if format == "legacy" {
				args = append(args, "--new-bundle-format=false")
			}
			if r := cosign(b, append(args, digestRef)...); r.code != 0 {
				b.Fatalf("cosign sign: %s", r.out)
			}
			var ours, theirs time.Duration
			for b.Loop() {
				start := time.Now()
				if r := csig(b, "verify", "--key", pub, tag); r.code != 0 {
					b.Fatalf("nri-csig verify: exit %d\n%s", r.code, r.out)
				}
				mid := time.Now()
				if r := cosign(b, append(cosignVerifyFlags, "--key", pub, tag)...); r.code != 0 {
					b.Fatalf("cosign verify: exit %d\n%s", r.code, r.out)
				}
				ours += mid.Sub(start)
				theirs += time.Since(mid)
			}
			n := float64(b.N)
			b.ReportMetric(float64(ours.Milliseconds())/n, "nri-csig-ms/op")
			b.ReportMetric(float64(theirs.Milliseconds())/n, "cosign-ms/op")
			b.ReportMetric(float64(theirs)/float64(ours), "cosign/nri-csig")
		})
	}
}
