package daemon

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the daemon's GOGC once boot verification is done,
// unless --gc-percent or the GOGC environment variable says otherwise. Go's
// default (100, kept during boot, which allocates most) lets the heap grow
// to twice what is live before collecting; afterwards the daemon's live heap
// is mostly the image index and the signature store, which change slowly,
// and its decisions allocate little, so collecting at +50 % costs little CPU
// and keeps resident memory closer to what is live.
const DefaultGCPercent = 50

// setGCPercent applies percent (0: DefaultGCPercent unless GOGC is set in
// the environment, which Go applied already).
func setGCPercent(percent int, log *slog.Logger) {
	if percent <= 0 {
		if _, ok := os.LookupEnv("GOGC"); ok {
			return
		}
		percent = DefaultGCPercent
	}
	debug.SetGCPercent(percent)
	log.Debug("garbage collector set", "gc_percent", percent)
}

// releaseMemory collects and returns freed memory to the system at once,
// after a burst whose garbage would otherwise stay resident until the
// runtime's background scavenger returns it, a few MiB a second: boot
// verification of every image, and forgetting many deleted images. It stops
// the daemon for one collection of the live heap (milliseconds at 10,000
// images), so it runs only after such bursts.
func releaseMemory() { debug.FreeOSMemory() }
