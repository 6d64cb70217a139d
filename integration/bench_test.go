//go:build integration

package integration

import (
	"testing"

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
		testbed.BenchmarkCreates(b, daemon, pod, env.Trusted.Ref)
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
		testbed.BenchmarkCreates(b, nil, pod, env.Trusted.Ref)
	})
}
