package daemon

import (
	"testing"
	"time"
)

// A pre-installed daemon registers within 3 s of its launch, inside
// containerd's 5 s registration timeout; an external one waits up to 5 s
// from its boot, as before.
func TestBootDeadline(t *testing.T) {
	launch := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	boot := launch.Add(100 * time.Millisecond)
	if got, want := bootDeadline(launch, boot, false), boot.Add(5*time.Second); !got.Equal(want) {
		t.Errorf("external: %v, want %v", got, want)
	}
	if got, want := bootDeadline(launch, boot, true), launch.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("pre-installed: %v, want %v", got, want)
	}
	late := launch.Add(10 * time.Second) // a boot that began after the bound: the external bound is later still
	if got, want := bootDeadline(launch, late, true), launch.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("pre-installed, late boot: %v, want %v", got, want)
	}
}
