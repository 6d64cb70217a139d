package daemon

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the daemon's GOGC, unless --gc-percent or the GOGC
// environment variable says otherwise. Go's default (100) lets the heap grow
// to twice what is live before collecting, and the runtime keeps about that
// much resident. The daemon's live heap is mostly the image index and the
// signature store, which change slowly, and its decisions allocate little,
// so collecting at +25 % costs little CPU (a collection per few MiB
// allocated, a few ms of marking at 10,000 images) and keeps resident memory
// within about a third of what is live. It applies from the start: boot
// allocates most (index, log replay, every signature read), and at 100 its
// peak at 10,000 images was 109-124 MiB against 83-94 MiB at 25, with boot
// times within the scale bench's run-to-run noise. A soft memory limit would
// do the same only while it is re-derived as the node's images grow (a fixed
// one below a larger node's live heap makes the collector run back to back):
// GOGC follows the live heap by itself. GOMEMLIMIT still works as Go
// documents, for an operator who wants a hard budget.
const DefaultGCPercent = 25

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

// compactMemory copies the image index and the signature store into fresh
// memory (the index keeps digests as fixed-size keys, the store one string
// of each), after a burst of deletions: the runtime gives back a memory span
// only when nothing in it lives, and the survivors of a burst are scattered
// over the spans the others left. It costs one copy of each (the survivors only).
func (d *daemon) compactMemory() {
	d.images.Compact()
	d.sigs.Compact(nil)
}
