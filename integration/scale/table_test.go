//go:build integration

package scale

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// row is every figure measured at one size.
type row struct {
	images int
	setup  struct{ push, sign, imp time.Duration }
	cold   bootResult
	warm   bootResult
	steady latency
	reload latency
	// restart is creates as soon as a restarted daemon has registered.
	restart latency
	// reloads is how many reloads the daemon logged during the reload sample.
	reloads int
	miss    missResult
	without latency
	deleted int
	// entriesAfterDelete is the daemon's signature entry count after the
	// deletions (evicted: it fell by the number deleted within the wait).
	entriesAfterDelete float64
	evicted            bool
	afterDelete        testbed.Memory
	// afterCreates is the cold-booted daemon's memory after the decision
	// and reload samples: steady state, not the moment boot ended.
	afterCreates testbed.Memory
}

// verifyResult is "nri-csig verify" (full binary and nri-csig-cli) against
// "cosign verify --key" on one image in one signature format.
type verifyResult struct {
	format                      string
	sigs                        int
	runs                        int
	fullWall, oursWall, cosWall time.Duration // medians
	fullPeak, oursPeak, cosPeak int64         // max RSS (bytes), medians
	fullReqs, oursReqs, cosReqs int           // registry requests of one run
}

// floorResult is "version" of each binary: starting and doing nothing.
type floorResult struct {
	runs                           int
	fullWall, liteWall, daemonWall time.Duration
	fullPeak, litePeak, daemonPeak int64
}

type results struct {
	commit string // what was measured, read when the run starts
	mu     sync.Mutex
	rows   []*row
	verify []verifyResult
	floor  *floorResult
	// inproc is BenchmarkInProcess's results, in the order measured.
	inproc []benchMetrics
	// index is BenchmarkIndexBuild's first-build time per size and reader.
	index map[int]map[string]time.Duration
}

func (r *results) addInProcess(m benchMetrics) {
	r.mu.Lock()
	r.inproc = append(r.inproc, m)
	r.mu.Unlock()
}

func (r *results) setIndexBuild(n int, reader string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.index == nil {
		r.index = map[int]map[string]time.Duration{}
	}
	if r.index[n] == nil {
		r.index[n] = map[string]time.Duration{}
	}
	r.index[n][reader] = d
}

func (r *results) setFloor(f floorResult) { r.mu.Lock(); r.floor = &f; r.mu.Unlock() }

func (r *results) add(x *row) { r.mu.Lock(); r.rows = append(r.rows, x); r.mu.Unlock() }

// row is the row of n images, or nil (r.mu held).
func (r *results) row(n int) *row {
	for _, x := range r.rows {
		if x.images == n {
			return x
		}
	}
	return nil
}

func (r *results) addVerify(v verifyResult) {
	r.mu.Lock()
	r.verify = append(r.verify, v)
	r.mu.Unlock()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mem(m testbed.Memory) string {
	return fmt.Sprintf("%s / %s MiB", testbed.MiB(m.RSS), testbed.MiB(m.HWM))
}

// split is VmRSS as anonymous + file-backed pages, and the Go heap.
func split(m testbed.Memory, heap float64) string {
	return fmt.Sprintf("%s + %s MiB; Go heap %.1f MiB", testbed.MiB(m.Anon), testbed.MiB(m.File), heap/(1<<20))
}

func verified(b bootResult) string {
	if b.verified == 0 {
		return fmt.Sprintf("timeout (%d of %d, %d failed)", b.held, b.want, b.failed)
	}
	if b.failed > 0 {
		return fmt.Sprintf("%s (%d of %d failed: signature discovery errors)", secs(b.verified), b.failed, b.want)
	}
	return secs(b.verified)
}

func pct(l latency) string {
	s := fmt.Sprintf("%.3f / %.3f ms", l.p50, l.p99)
	if len(l.refused) > 0 {
		forTime := 0
		for _, r := range l.refused {
			if strings.Contains(r, "did not finish within") {
				forTime++
			}
		}
		s += fmt.Sprintf(" (%d of %d refused, %d of them for time)", len(l.refused), l.n, forTime)
	}
	return s
}

// markdown is the one table: a line per measure, a column per size; the
// verify comparison (one image, independent of the node's size) follows in
// the same table.
func (r *results) markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	b.WriteString("| measure |")
	for _, x := range r.rows {
		fmt.Fprintf(&b, " %d images |", x.images)
	}
	if len(r.rows) == 0 {
		b.WriteString(" value |")
	}
	b.WriteString("\n|---|")
	for range max(len(r.rows), 1) {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	line := func(name string, f func(*row) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, x := range r.rows {
			fmt.Fprintf(&b, " %s |", f(x))
		}
		b.WriteString("\n")
	}
	if len(r.rows) > 0 {
		line("setup: push / sign / ctr import", func(x *row) string {
			return fmt.Sprintf("%s / %s / %s", secs(x.setup.push), secs(x.setup.sign), secs(x.setup.imp))
		})
		line("cold boot (fresh state dir, signatures in the loopback registry): start → registered with NRI", func(x *row) string { return secs(x.cold.registered) })
		line("cold boot: start → every image verified (or its discovery failed)", func(x *row) string { return verified(x.cold) })
		line("cold boot: registered → every image verified (boot verification alone)", func(x *row) string {
			if x.cold.verified == 0 {
				return verified(x.cold)
			}
			return secs(x.cold.verified - x.cold.registered)
		})
		line("cold boot: daemon VmRSS / VmHWM once boot settled (all verified, RSS no longer falling)", func(x *row) string { return mem(x.cold.mem) })
		line("cold boot: VmRSS as RssAnon + RssFile; Go heap in use (go_memstats_heap_alloc_bytes)", func(x *row) string { return split(x.cold.mem, x.cold.heap) })
		line("warm boot (state dir kept, all verified on disk): start → registered with NRI", func(x *row) string { return secs(x.warm.registered) })
		line("warm boot: start → every image loaded (or its discovery failed)", func(x *row) string { return verified(x.warm) })
		line("warm boot: daemon VmRSS / VmHWM once boot settled (all loaded)", func(x *row) string { return mem(x.warm.mem) })
		line("warm boot: VmRSS as RssAnon + RssFile; Go heap in use", func(x *row) string { return split(x.warm.mem, x.warm.heap) })
		line("decision p50 / p99 (audit duration_ms, verified images)", func(x *row) string { return pct(x.steady) })
		line("cold-booted daemon after the decision and reload samples: VmRSS / VmHWM (RssAnon + RssFile)", func(x *row) string {
			return fmt.Sprintf("%s (%s + %s MiB)", mem(x.afterCreates), testbed.MiB(x.afterCreates.Anon), testbed.MiB(x.afterCreates.File))
		})
		line("decision p50 / p99 during reloads (SIGHUP every 200 ms)", func(x *row) string {
			return pct(x.reload) + fmt.Sprintf(", %d reloads", x.reloads)
		})
		line("decision p50 / p99 right after a restart (creates as soon as it registers)", func(x *row) string { return pct(x.restart) })
		line("resolution miss: image imported just before the create (decision includes its signature fetch)", func(x *row) string { return x.miss.String() })
		line("crictl create median: with nri-csig / without plugin = ratio", func(x *row) string {
			return fmt.Sprintf("%s / %s = %.2f×", ms(x.steady.createMedian), ms(x.without.createMedian),
				float64(x.steady.createMedian)/float64(max(x.without.createMedian, 1)))
		})
		line("after deleting 90 % of the images: VmRSS / VmHWM (vs this node's warm boot; vs the warm boot of the node a tenth its size, when measured)", func(x *row) string {
			s := fmt.Sprintf("%s (%+.0f %%", mem(x.afterDelete), 100*(float64(x.afterDelete.RSS)/float64(max(x.warm.mem.RSS, 1))-1))
			if t := r.row(x.images / 10); t != nil {
				s += fmt.Sprintf("; %+.0f %% vs %d images", 100*(float64(x.afterDelete.RSS)/float64(max(t.warm.mem.RSS, 1))-1), t.images)
			}
			s += ")"
			if !x.evicted {
				s += fmt.Sprintf("; signature entries still %g", x.entriesAfterDelete)
			}
			return s
		})
	}
	oneCell := func(name, cells string) {
		fmt.Fprintf(&b, "| %s | %s |", name, cells)
		for range max(len(r.rows)-1, 0) {
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	ratio := func(a, c int64) float64 { return float64(a) / float64(max(c, 1)) }
	for _, v := range r.verify {
		oneCell(fmt.Sprintf("verify, %s format, %d signature(s): nri-csig-cli / nri-csig / cosign verify --key (median of %d)", v.format, v.sigs, v.runs),
			fmt.Sprintf("wall %s / %s / %s = %.2f× / %.2f×; peak RSS %s / %s / %s MiB = %.2f× / %.2f×; requests %d / %d / %d",
				ms(v.oursWall), ms(v.fullWall), ms(v.cosWall), ratio(int64(v.oursWall), int64(v.cosWall)), ratio(int64(v.fullWall), int64(v.cosWall)),
				testbed.MiB(v.oursPeak), testbed.MiB(v.fullPeak), testbed.MiB(v.cosPeak), ratio(v.oursPeak, v.cosPeak), ratio(v.fullPeak, v.cosPeak),
				v.oursReqs, v.fullReqs, v.cosReqs))
	}
	if len(r.index) > 0 {
		sizes := slices.Sorted(maps.Keys(r.index))
		cells := make([]string, len(sizes))
		for i, n := range sizes {
			cells[i] = fmt.Sprintf("%d images: %s (daemon's reader, one Read per blob) / %s (Info + Read)", n, secs(r.index[n]["api"]), secs(r.index[n]["store"]))
		}
		oneCell("image index first build, in-process on the real containerd (BenchmarkIndexBuild)", strings.Join(cells, "; "))
	}
	for _, m := range r.inproc {
		oneCell("in-process, go test -bench "+m.name, inProcessText(m))
	}
	if f := r.floor; f != nil {
		oneCell(fmt.Sprintf("floor: nri-csig-cli / nri-csig / nri-csigd version, the binary starting and doing nothing (median of %d)", f.runs),
			fmt.Sprintf("wall %s / %s / %s; peak RSS %s / %s / %s MiB", ms(f.liteWall), ms(f.fullWall), ms(f.daemonWall),
				testbed.MiB(f.litePeak), testbed.MiB(f.fullPeak), testbed.MiB(f.daemonPeak)))
	}
	return b.String()
}

// document is BENCHMARKS.md: how the table was made, then the table.
func (r *results) document(tableText string) string {
	host, _ := os.Hostname()
	kernel := strings.TrimSpace(output("uname", "-r"))
	cmd := os.Getenv("BENCH_COMMAND")
	if cmd == "" {
		cmd = "make bench"
	}
	sizes := os.Getenv("BENCH_SIZES")
	if sizes == "" {
		sizes = "100 1000 10000"
	}
	return fmt.Sprintf(`# Node-scale benchmark

Written by `+"`%s`"+` (BENCH_SIZES=%q): the real nri-csig daemon on a real containerd
(testbed: containerd from go.mod, runc, crictl) holding N small signed images, their
signatures (cosign legacy format, one ECDSA key) in a go-containerregistry loopback registry,
one bundle policy requiring that key in the namespace the containers are created in.
See integration/scale for what each line measures.

- commit: %s
- date: %s
- machine: %s, %d CPUs (%s), Linux %s, %s; load average when written: %s

%s
How each line is measured (integration/scale):

- Images share one busybox layer and differ by a config label; they are pushed and signed
  (pkg/sign, legacy .sig) in the loopback registry and imported digest-preserving with one
  `+"`ctr images import`"+` of an OCI archive. Each size gets a fresh containerd and registry;
  containerd's root is on tmpfs (BENCH_CONTAINERD_DIR, /dev/shm by default) so that setup
  is not 20,000 fsyncs, which also makes its own part of a create faster than on a disk;
  the daemon's state dir is on disk.
- Boot times are from the daemon's launch: "registered" is its "synchronized with runtime"
  log line; "all verified/loaded" is `+"`nri_csig_signature_cache_entries`"+` plus
  `+"`nri_csig_signature_fetch_errors_total`"+` on /metrics reaching the image count (polled, so ±200 ms); "timeout (k of n)" means it did not within
  BENCH_BOOT_TIMEOUT. Memory is VmRSS / VmHWM from /proc/<pid>/status once VmRSS stopped falling for 2 s
  after that moment (at most 10 s: boot ends by compacting and returning memory),
  and VmRSS split into RssAnon (what the process allocated: heap, stacks) and RssFile
  (pages of the binary it touched); the Go heap is go_memstats_heap_alloc_bytes on /metrics.
- Decisions are the audit records' duration_ms of BENCH_CREATES `+"`crictl create`"+` calls on
  distinct verified images (one uncounted warm-up create first); "refused" counts creates
  that failed, "for time" those refused with "the decision did not finish within 1s".
- The create ratio is the median `+"`crictl create`"+` wall time with the daemon connected
  over the one without any NRI plugin, in the same containerd a minute apart; on a shared
  2-core machine it is noisy.
- After deleting 90 %% of the images (`+"`ctr images rm`"+`), the benchmark waits up to
  BENCH_EVICT_WAIT for the signature entries to fall by as many; "still n" means they did not.
- Verify: each command is a fresh process under GNU time, alternately, on an image signed
  by cosign (the 100-signature image by pkg/sign, each signature over its own payload) in
  a go-containerregistry loopback registry with the referrers API; medians of
  BENCH_VERIFY_RUNS. nri-csig-cli is the same ./cmd/nri-csig built with -tags nodaemon
  (the operator's commands without run and check-config and without the certificate
  witnesses' verifiers: no containerd client, NRI, gRPC, Prometheus, notation-go or
  sigstore-go); nri-csig is the full binary (every command). The node daemon runs
  nri-csigd (-tags nodeonly). Requests are those the registry answered during one run of each.
- The image index's first build (BenchmarkIndexBuild) is in-process on a fresh containerd
  holding the size's images (not unpacked): the daemon's reader (imagestore.ContentAPI, one
  Read per blob) and the containerd client's content store (Info, then Read), 8 reads at a
  time either way; the time of the last of b.N builds.
- The in-process lines are unit benchmarks run by BenchmarkInProcess in a child `+"`go test`"+`
  (their one copy lives next to the code they measure): the node decision with 10,000
  exemptions and 10,000 revocations (pkg/decision), the plugin's CPU time per container,
  CreateContainer + validation + audit record, per audit sink (pkg/plugin; journald only
  when its socket is there, and its figure includes the kernel's delivery of the datagram
  to journald), and 100 signatures against 10 keys (pkg/verify).
`, cmd, sizes, r.commit, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), cpuModel(), kernel, runtime.Version(), loadAverage(), tableText)
}

// commitNow names the checkout being measured: HEAD, whether the work tree
// differs, and the last commit that changed the daemon's code.
func commitNow() string {
	c := strings.TrimSpace(output("git", "rev-parse", "--short=12", "HEAD"))
	if output("git", "status", "--porcelain", "--untracked-files=no") != "" {
		c += " (with uncommitted changes)"
	}
	if code := strings.TrimSpace(output("git", "log", "-1", "--format=%h %s", "--", "../../pkg", "../../cmd", "../../go.mod")); code != "" {
		c += "; the daemon's code (pkg/, cmd/, go.mod) last changed in " + code
	}
	return c
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures: on a shared
// machine, the timings depend on them.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
