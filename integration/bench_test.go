//go:build integration

package integration

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// BenchmarkCreateContainer measures "crictl create" (process start included)
// on the real containerd, with nri-csig judging every container and with no
// plugin at all, and reports nri-csig's own decision latency percentiles.
func BenchmarkCreateContainer(b *testing.B) {
	b.Run("with-nri-csig", func(b *testing.B) {
		pod, err := env.Containerd.RunPod("bench-with", enforcedNS)
		if err != nil {
			b.Fatal(err)
		}
		defer pod.Remove()
		prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := pod.Create(testbed.ContainerSpec{Name: prefix + strconv.Itoa(i), Image: env.Trusted.Ref}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if ms := daemon.DecisionMillis(prefix); len(ms) > 0 {
			b.ReportMetric(ms[len(ms)/2], "decision-p50-ms")
			b.ReportMetric(ms[(len(ms)*99)/100], "decision-p99-ms")
		}
		if rss, err := daemon.RSSBytes(); err == nil {
			b.ReportMetric(float64(rss)/(1<<20), "daemon-rss-MiB")
		}
	})
	b.Run("without-plugin", func(b *testing.B) {
		daemon.Stop()
		if err := env.Containerd.SetRequiredPlugins(); err != nil {
			b.Fatal(err)
		}
		if err := env.Containerd.Restart(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			env.Containerd.SetRequiredPlugins(testbed.PluginName)
			if err := env.Containerd.Restart(); err != nil {
				b.Fatal(err)
			}
			d, err := env.Containerd.StartDaemon(nodeConfig)
			if err != nil {
				b.Fatal(err)
			}
			daemon = d
		}()
		pod, err := env.Containerd.RunPod("bench-without", enforcedNS)
		if err != nil {
			b.Fatal(err)
		}
		defer pod.Remove()
		prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := pod.Create(testbed.ContainerSpec{Name: prefix + strconv.Itoa(i), Image: env.Trusted.Ref}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
