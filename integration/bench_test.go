//go:build integration

package integration

import (
	"fmt"
	"sort"
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
		var ms []float64
		for _, r := range daemon.AuditRecords(map[string]string{"event": "create", "namespace": enforcedNS}) {
			if name, _ := r["container"].(string); len(name) > len(prefix) && name[:len(prefix)] == prefix {
				if v, err := strconv.ParseFloat(fmt.Sprint(r["duration_ms"]), 64); err == nil {
					ms = append(ms, v)
				}
			}
		}
		if len(ms) > 0 {
			sort.Float64s(ms)
			b.ReportMetric(ms[len(ms)/2], "decision-p50-ms")
			b.ReportMetric(ms[(len(ms)*99)/100], "decision-p99-ms")
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
