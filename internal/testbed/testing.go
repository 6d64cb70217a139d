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
