package testbed

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// NewPod runs a host-network pod named after the test in namespace; it is
// removed when the test ends.
func (c *Containerd) NewPod(t testing.TB, namespace string) *Pod {
	t.Helper()
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	pod, err := c.RunPod(name, namespace)
	if err != nil {
		t.Fatalf("run pod: %v", err)
	}
	t.Cleanup(func() { pod.Remove() })
	return pod
}

// WaitRecord waits for an audit record with these fields and returns the last.
func (d *Daemon) WaitRecord(t testing.TB, match map[string]string) map[string]any {
	t.Helper()
	var rec map[string]any
	err := Poll(15*time.Second, func() error {
		recs := d.AuditRecords(match)
		if len(recs) == 0 {
			return fmt.Errorf("no audit record matching %v", match)
		}
		rec = recs[len(recs)-1]
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nlog tail:\n%s", err, tail(d.LogPath, 15))
	}
	return rec
}

// BenchmarkCreates creates b.N containers from image in pod with crictl and
// reports, when d is not nil, the daemon's decision latency percentiles (from
// its audit records) and its resident memory.
func BenchmarkCreates(b *testing.B, d *Daemon, pod *Pod, image string) {
	b.Helper()
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := pod.Create(ContainerSpec{Name: fmt.Sprintf("%s%d", prefix, i), Image: image}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if d == nil {
		return
	}
	if ms := d.DecisionMillis(prefix); len(ms) > 0 {
		b.ReportMetric(ms[len(ms)/2], "decision-p50-ms")
		b.ReportMetric(ms[(len(ms)*99)/100], "decision-p99-ms")
	}
	if rss, err := d.RSSBytes(); err == nil {
		b.ReportMetric(float64(rss)/(1<<20), "daemon-rss-MiB")
	}
}
