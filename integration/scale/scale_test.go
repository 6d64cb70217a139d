//go:build integration

package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
)

const (
	cluster   = "bench"
	namespace = "scale" // the namespace the bundle's policy covers
	// entriesSeries is the daemon's count of image digests whose signatures
	// it holds (verified or not): "all verified" is this reaching the image count.
	entriesSeries = "nri_csig_signature_cache_entries"
	// fetchErrorsSeries counts failed signature discoveries: an image whose
	// discovery failed is done too (and the table says how many failed).
	fetchErrorsSeries = "nri_csig_signature_fetch_errors_total"
)

// BenchmarkNodeScale measures the node at each size in BENCH_SIZES, one fresh
// containerd and registry per size. Settings: BENCH_CREATES containers per
// latency sample (50), BENCH_BOOT_TIMEOUT seconds to wait for all images to
// be verified or loaded (600), BENCH_EVICT_WAIT seconds to wait for the daemon
// to forget deleted images (20), BENCH_PPROF_DIR a folder for the daemon's
// heap profiles (run with --debug-pprof; taken when all are verified, loaded,
// and after the deletions: heap-<n>-<moment>.pb.gz; none when unset).
//
//	BENCH_SIZES="100 1000" go test -tags integration -run '^$' -bench NodeScale -benchtime 1x -timeout 60m ./integration/scale
func BenchmarkNodeScale(b *testing.B) {
	priv, pub := keyPair(b, "ci")
	bundleKey, bundlePub := keyPair(b, "bundle-signing")
	bundle := filepath.Join(work, "bundle.yaml")
	if _, err := os.Stat(bundle); err != nil {
		for _, s := range [][]string{
			{"witness", "create", "--name", "ci", "--key", pub, "--description", "benchmark signer"},
			{"policy", "create", "--name", "scale", "--witness", "ci", "--cluster", cluster, "--namespace", namespace, "--enabled"},
		} {
			if _, err := cli(append(s, "--bundle", bundle)...); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := cli("bundle", "sign", "--key", bundleKey, "--bundle", bundle); err != nil {
			b.Fatal(err)
		}
	}
	signer, err := keyref.Open(context.Background(), priv, keyref.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := settings{
		creates:     envInt(b, "BENCH_CREATES", 50),
		bootTimeout: time.Duration(envInt(b, "BENCH_BOOT_TIMEOUT", 600)) * time.Second,
		evictWait:   time.Duration(envInt(b, "BENCH_EVICT_WAIT", 20)) * time.Second,
		pprofDir:    os.Getenv("BENCH_PPROF_DIR"),
		bundle:      bundle, bundlePub: bundlePub, signer: signer,
	}
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			for range b.N {
				r := measureNode(b, s, n)
				table.add(r)
				if err := table.save(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.cold.registered.Seconds(), "cold-registered-s")
				b.ReportMetric(r.cold.verified.Seconds(), "cold-all-verified-s")
				b.ReportMetric(r.warm.registered.Seconds(), "warm-registered-s")
				b.ReportMetric(float64(r.warm.mem.RSS)/(1<<20), "warm-rss-MiB")
				b.ReportMetric(r.steady.p99, "decision-p99-ms")
			}
		})
	}
}

type settings struct {
	creates     int
	bootTimeout time.Duration
	evictWait   time.Duration
	pprofDir    string
	bundle      string
	bundlePub   string
	signer      keys.Signer
}

// measureNode runs every measurement at one size and returns its row.
func measureNode(b *testing.B, s settings, n int) *row {
	r := &row{images: n}
	reg, err := testbed.StartRegistry()
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	pause, err := testbed.PauseImage(tools.Pause)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Push("csig/pause:1", pause); err != nil {
		b.Fatal(err)
	}
	// containerd's root on tmpfs (BENCH_CONTAINERD_DIR, "" for the temp dir):
	// setup then takes seconds per thousand images, not minutes of fsyncs.
	// The daemon's state dir stays on disk.
	ctrdParent := "/dev/shm"
	if v, ok := os.LookupEnv("BENCH_CONTAINERD_DIR"); ok {
		ctrdParent = v
	}
	ctrd, err := testbed.StartContainerd(tools, testbed.ContainerdOptions{RegistryHost: reg.Host, SandboxImage: reg.Ref("csig/pause:1"), ParentDir: ctrdParent})
	if err != nil {
		b.Fatal(err)
	}
	defer ctrd.Close()
	if _, err := ctrd.Pull(reg.Ref("csig/pause:1")); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(work, fmt.Sprintf("size-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Images: build, push, sign, import.
	ctx := context.Background()
	start := time.Now()
	imgs, err := testbed.BuildManyImages(tools.Busybox, reg.Host, "scale/img", "v", n)
	if err != nil {
		b.Fatal(err)
	}
	if err := imgs.PushMany(ctx, 8); err != nil {
		b.Fatal(err)
	}
	r.setup.push = time.Since(start)
	progress("images=%d: built and pushed in %s", n, r.setup.push.Round(time.Millisecond))
	start = time.Now()
	if err := imgs.SignMany(ctx, s.signer, 8); err != nil {
		b.Fatal(err)
	}
	r.setup.sign = time.Since(start)
	progress("images=%d: signed in %s", n, r.setup.sign.Round(time.Millisecond))
	start = time.Now()
	// Image 0 is unpacked; the others share its only layer, hence its
	// snapshot. The transfer service takes at most 10,000 descriptors per
	// archive: import in chunks (BENCH_IMPORT_CHUNK).
	chunk := envInt(b, "BENCH_IMPORT_CHUNK", 2000)
	for from := 0; from < n; {
		to := min(from+chunk, n)
		if from == 0 {
			to = 1
		}
		archive := filepath.Join(dir, "images.tar")
		if err := imgs.WriteOCIArchive(archive, from, to); err != nil {
			b.Fatal(err)
		}
		if err := ctrd.ImportArchive(archive, from == 0); err != nil {
			b.Fatal(err)
		}
		os.Remove(archive)
		from = to
	}
	r.setup.imp = time.Since(start)
	progress("images=%d: imported into containerd in %s", n, r.setup.imp.Round(time.Millisecond))
	if got, err := ctrd.Ctr("images", "ls", "-q"); err != nil || strings.Count(got, "\n")+1 < n {
		b.Fatalf("containerd lists %d images after the import, want at least %d (%v)", strings.Count(got, "\n")+1, n, err)
	}
	// Every image digest the daemon should hold: the n images and the pause image.
	expect := n + 1

	nodeConfig := filepath.Join(dir, "node.yaml")
	cfg := fmt.Sprintf("apiVersion: nri-csig.io/v1alpha1\nkind: NodeConfig\ncluster: %s\nbundle:\n  file: %s\n  interval: 1h\n  signingKey: %s\nstateDir: %s\n",
		cluster, s.bundle, s.bundlePub, filepath.Join(dir, "state"))
	if err := os.WriteFile(nodeConfig, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}

	// (b) Cold boot: a fresh state dir, every signature in the registry.
	progress("images=%d: cold boot (fresh state dir)", n)
	d, boot := bootDaemon(b, ctrd, nodeConfig, expect, s)
	s.heapProfile(d, n, "cold")
	r.cold = boot
	progress("images=%d: cold boot registered %s, %s", n, boot.registered.Round(time.Millisecond), boot.verifiedText())
	defer func() { d.Stop() }()

	pod, err := ctrd.RunPod("scale", namespace)
	if err != nil {
		b.Fatal(err)
	}
	// Decisions on verified images.
	r.steady = createMany(b, ctrd, d, pod, imgs, "steady-", 0, s.creates, nil)
	progress("images=%d: decisions p50 %.3f ms p99 %.3f ms, create %s", n, r.steady.p50, r.steady.p99, r.steady.createMedian)

	// Decisions while the daemon reloads its config and bundle (SIGHUP).
	reloadsBefore := d.Count(`"msg":"configuration reloaded"`)
	r.reload = createMany(b, ctrd, d, pod, imgs, "reload-", s.creates, s.creates, func() { d.Signal(syscall.SIGHUP) })
	r.reloads = d.Count(`"msg":"configuration reloaded"`) - reloadsBefore
	progress("images=%d: during %d reloads: decisions p50 %.3f ms p99 %.3f ms", n, r.reloads, r.reload.p50, r.reload.p99)
	if r.afterCreates, err = d.Memory(); err != nil {
		b.Fatal(err)
	}

	// A resolution miss: a container from an image imported a moment ago.
	r.miss = resolutionMiss(b, ctrd, d, pod, reg, dir, s)
	expect++
	progress("images=%d: resolution miss: %s", n, r.miss)

	// Create latency without the plugin (no NRI plugin connected).
	if err := d.Stop(); err != nil {
		b.Fatal(err)
	}
	r.without = createMany(b, ctrd, nil, pod, imgs, "without-", 2*s.creates, s.creates, nil)
	progress("images=%d: create without the plugin %s (with: %s)", n, r.without.createMedian, r.steady.createMedian)

	// (a) Warm boot: the same state dir, every image verified on disk.
	progress("images=%d: warm boot (state dir from the cold boot)", n)
	d, boot = bootDaemon(b, ctrd, nodeConfig, expect, s)
	s.heapProfile(d, n, "warm")
	r.warm = boot
	progress("images=%d: warm boot registered %s, %s", n, boot.registered.Round(time.Millisecond), boot.verifiedText())

	// Creates at once after a restart (warm state dir), before the daemon
	// has loaded every image: none may be refused for time.
	if err := d.Stop(); err != nil {
		b.Fatal(err)
	}
	progress("images=%d: restart, creating containers as soon as it registers", n)
	d, _ = launchRegistered(b, ctrd, nodeConfig, s)
	r.restart = createMany(b, ctrd, d, pod, imgs, "restart-", 3*s.creates, s.creates, nil)
	progress("images=%d: right after the restart: decisions p50 %.3f ms p99 %.3f ms, %d refused", n, r.restart.p50, r.restart.p99, len(r.restart.refused))
	if _, _, err := waitHeld(d, expect, s.bootTimeout); err != nil {
		progress("images=%d: %v", n, err)
	}

	// Memory after deleting nine tenths of the images (the last ones: image
	// 0 holds the unpacked snapshot the others share).
	del := n * 9 / 10
	// Both records of each image: its name and the ID record (sha256:<config>)
	// the CRI adds; an image with either left is still on the node.
	if err := ctrd.RemoveImages(append(slices.Clone(imgs.Refs[n-del:]), imgs.Configs[n-del:]...)); err != nil {
		b.Fatal(err)
	}
	r.deleted = del
	r.entriesAfterDelete = -1
	err = testbed.Poll(s.evictWait, func() error {
		v, err := d.Metric(entriesSeries)
		if err != nil {
			return err
		}
		r.entriesAfterDelete = v
		if int(v) > expect-del {
			return fmt.Errorf("the daemon still holds %d signature entries, want at most %d", int(v), expect-del)
		}
		return nil
	})
	r.evicted = err == nil
	// The daemon forgets in the background (image events one by one, then
	// the store's garbage collection): read the memory once it stopped
	// falling for 2 s (at most BENCH_EVICT_WAIT more).
	r.afterDelete = settledMemory(b, d, s.evictWait)
	progress("images=%d: after deleting %d images: RSS %s MiB, %g signature entries", n, del, testbed.MiB(r.afterDelete.RSS), r.entriesAfterDelete)
	s.heapProfile(d, n, "deleted")
	return r
}

// settledMemory reads the daemon's memory every 500 ms until VmRSS has not
// fallen for 2 s, or wait passed, and returns the last reading.
func settledMemory(b *testing.B, d *testbed.Daemon, wait time.Duration) testbed.Memory {
	m, err := d.Memory()
	if err != nil {
		b.Fatal(err)
	}
	low, since := m.RSS, time.Now()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && time.Since(since) < 2*time.Second; {
		time.Sleep(500 * time.Millisecond)
		if m, err = d.Memory(); err != nil {
			b.Fatal(err)
		}
		if m.RSS < low {
			low, since = m.RSS, time.Now()
		}
	}
	return m
}

// heapProfile saves the daemon's heap profile under BENCH_PPROF_DIR, if set,
// as heap-<images>-<moment>.pb.gz (read it with go tool pprof).
func (s settings) heapProfile(d *testbed.Daemon, n int, moment string) {
	if s.pprofDir == "" {
		return
	}
	path := filepath.Join(s.pprofDir, fmt.Sprintf("heap-%d-%s.pb.gz", n, moment))
	if err := d.HeapProfile(path); err != nil {
		progress("images=%d: no heap profile: %v", n, err)
		return
	}
	progress("images=%d: heap profile in %s", n, path)
	var stats []string
	for _, m := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_next_gc_bytes", "go_goroutines"} {
		if v, err := d.Metric(m); err == nil {
			stats = append(stats, fmt.Sprintf("%s=%.1f", strings.TrimPrefix(m, "go_memstats_"), v/(1<<20)))
		}
	}
	mem, _ := d.Memory()
	progress("images=%d: %s: VmRSS %s MiB (anon %s, file %s); Go memory in MiB (goroutines /2^20): %s", n, moment,
		testbed.MiB(mem.RSS), testbed.MiB(mem.Anon), testbed.MiB(mem.File), strings.Join(stats, " "))
}

// bootResult is one daemon start.
type bootResult struct {
	registered time.Duration // launch -> synchronized with NRI (log time)
	verified   time.Duration // launch -> all image digests held (0: not within the timeout)
	held       int           // digests held when verified was measured (or at the timeout)
	failed     int           // failed signature discoveries by then
	want       int
	mem        testbed.Memory // at verified (or at the timeout)
	heap       float64        // go_memstats_heap_alloc_bytes then
}

func (b bootResult) verifiedText() string {
	if b.verified == 0 {
		return fmt.Sprintf("only %d of %d images verified at the timeout", b.held, b.want)
	}
	if b.failed > 0 {
		return fmt.Sprintf("all %d done at %s (%d discoveries failed), RSS %s MiB (peak %s)", b.want, b.verified.Round(time.Millisecond), b.failed, testbed.MiB(b.mem.RSS), testbed.MiB(b.mem.HWM))
	}
	return fmt.Sprintf("all %d verified at %s, RSS %s MiB (peak %s)", b.want, b.verified.Round(time.Millisecond), testbed.MiB(b.mem.RSS), testbed.MiB(b.mem.HWM))
}

// bootDaemon starts the daemon and waits until it has registered with NRI
// and until it holds want image digests (or timeout).
func bootDaemon(b *testing.B, ctrd *testbed.Containerd, nodeConfig string, want int, s settings) (*testbed.Daemon, bootResult) {
	timeout := s.bootTimeout
	d, launched := launchRegistered(b, ctrd, nodeConfig, s)
	res := bootResult{want: want}
	if at, err := d.LogTime("synchronized with runtime"); err == nil {
		res.registered = at.Sub(launched)
	} else {
		res.registered = time.Since(launched)
	}
	held, failed, err := waitHeld(d, want, timeout)
	res.held, res.failed = held, failed
	if failed > 0 {
		progress("failed signature discoveries, by error: %s", discoveryErrors(d.Log()))
	}
	if err == nil {
		res.verified = time.Since(launched)
	}
	// Boot ends with the daemon compacting its memory and returning what
	// boot freed (pkg/daemon prefetchAll), a moment after the last digest is
	// held: read the memory once it stopped falling.
	res.mem = settledMemory(b, d, 10*time.Second)
	res.heap, _ = d.Metric("go_memstats_heap_alloc_bytes")
	return d, res
}

// discoveryErrors counts the daemon's "signature discovery failed" log
// lines by their error, with the digest left out, most frequent first.
func discoveryErrors(log string) string {
	counts := map[string]int{}
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `"msg":"signature discovery failed"`) {
			continue
		}
		var rec struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		counts[digestPattern.ReplaceAllString(rec.Error, "sha256:…")]++
	}
	errs := slices.SortedFunc(maps.Keys(counts), func(a, b string) int { return counts[b] - counts[a] })
	var parts []string
	for _, e := range errs[:min(len(errs), 3)] {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[e], e))
	}
	return strings.Join(parts, "; ")
}

var digestPattern = regexp.MustCompile(`sha256[:-][0-9a-f]{64}`)

// launchRegistered starts the daemon and waits until it has registered
// with NRI; it returns when it was launched.
func launchRegistered(b *testing.B, ctrd *testbed.Containerd, nodeConfig string, s settings) (*testbed.Daemon, time.Time) {
	var extra []string
	if s.pprofDir != "" {
		extra = append(extra, "--debug-pprof")
	}
	launched := time.Now()
	d, err := ctrd.LaunchDaemon(nodeConfig, extra...)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.WaitRegistered(1, s.bootTimeout); err != nil {
		d.Kill()
		b.Fatal(err)
	}
	return d, launched
}

// waitHeld waits until every one of want image digests is either held by
// the daemon (verified, or loaded from its state dir) or counted as a failed
// signature discovery, and returns how many are held and how many failed.
func waitHeld(d *testbed.Daemon, want int, timeout time.Duration) (held, failed int, err error) {
	err = testbed.Poll(timeout, func() error {
		v, err := d.Metric(entriesSeries)
		if err != nil {
			return err
		}
		f, err := d.Metric(fetchErrorsSeries)
		if err != nil {
			return err
		}
		if held, failed = int(v), int(f); held+failed < want {
			return fmt.Errorf("%d of %d image digests verified, %d failed", held, want, failed)
		}
		return nil
	})
	return held, failed, err
}

// latency is one sample of container creates.
type latency struct {
	n            int
	p50, p99     float64 // nri-csig's decision time (audit duration_ms)
	createMedian time.Duration
	createP99    time.Duration
	refused      []string
}

// createMany creates count containers from images offset.. in pod (one crictl
// create each) and reads the daemon's decision times; during, if not nil,
// runs every 200ms while the containers are created.
func createMany(b *testing.B, ctrd *testbed.Containerd, d *testbed.Daemon, pod *testbed.Pod, imgs *testbed.ManyImages, prefix string, offset, count int, during func()) latency {
	prefix = fmt.Sprintf("%s%d-", prefix, time.Now().UnixNano())
	// One create first, not counted: containerd may still be noticing that a
	// plugin left, and the first create after a pause costs more.
	warm := 0
	err := testbed.Poll(15*time.Second, func() error {
		warm++
		_, err := pod.Create(testbed.ContainerSpec{Name: fmt.Sprintf("warmup-%s%d", prefix, warm), Image: imgs.Refs[offset%len(imgs.Refs)]})
		return err
	})
	if err != nil {
		// Not fatal: right after a restart, the daemon may refuse for time.
		progress("the warm-up create failed for 15s: %v", firstLine(err.Error()))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					during()
				}
			}
		}()
	}
	var walls []time.Duration
	var l latency
	for i := range count {
		ref := imgs.Refs[(offset+i)%len(imgs.Refs)]
		start := time.Now()
		_, err := pod.Create(testbed.ContainerSpec{Name: fmt.Sprintf("%s%d", prefix, i), Image: ref})
		walls = append(walls, time.Since(start))
		if err != nil {
			l.refused = append(l.refused, err.Error())
		}
	}
	close(stop)
	wg.Wait()
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	l.n = count
	l.createMedian = walls[len(walls)/2].Round(time.Microsecond * 100)
	l.createP99 = walls[(len(walls)*99)/100].Round(time.Microsecond * 100)
	if d != nil {
		var ms []float64
		// The audit records are written as the decision is answered: wait for all.
		testbed.Poll(10*time.Second, func() error {
			if ms = d.DecisionMillis(prefix); len(ms) < count {
				return fmt.Errorf("%d of %d audit records", len(ms), count)
			}
			return nil
		})
		if len(ms) > 0 {
			l.p50, l.p99 = ms[len(ms)/2], ms[(len(ms)*99)/100]
		}
	}
	if len(l.refused) > 0 {
		progress("%d of %d creates failed; first: %s", len(l.refused), count, l.refused[0])
	}
	return l
}

// missResult is the decision on a container whose image arrived a moment ago.
type missResult struct {
	decisionMS float64
	create     time.Duration
	refused    string
}

func (m missResult) String() string {
	if m.refused != "" {
		return fmt.Sprintf("REFUSED after %s: %s", m.create.Round(time.Millisecond), m.refused)
	}
	return fmt.Sprintf("decision %.3f ms (create %s)", m.decisionMS, m.create.Round(time.Millisecond))
}

// resolutionMiss imports one new signed image and creates a container from
// it at once: the daemon has never resolved its config digest (nor verified
// its signature: the decision includes that fetch).
func resolutionMiss(b *testing.B, ctrd *testbed.Containerd, d *testbed.Daemon, pod *testbed.Pod, reg *testbed.Registry, dir string, s settings) missResult {
	ctx := context.Background()
	img, err := testbed.BuildManyImages(tools.Busybox, reg.Host, "scale/miss", "m", 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := img.PushMany(ctx, 1); err != nil {
		b.Fatal(err)
	}
	if err := img.SignMany(ctx, s.signer, 1); err != nil {
		b.Fatal(err)
	}
	archive := filepath.Join(dir, "miss.tar")
	if err := img.WriteOCIArchive(archive, 0, 1); err != nil {
		b.Fatal(err)
	}
	if err := ctrd.ImportArchive(archive, true); err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("miss-%d", time.Now().UnixNano())
	start := time.Now()
	_, err = pod.Create(testbed.ContainerSpec{Name: name, Image: img.Refs[0]})
	m := missResult{create: time.Since(start)}
	if err != nil {
		var ce *testbed.CommandError
		if errors.As(err, &ce) {
			m.refused = reason(ce.Stderr)
		} else {
			m.refused = err.Error()
		}
		return m
	}
	testbed.Poll(10*time.Second, func() error {
		ms := d.DecisionMillis(name)
		if len(ms) == 0 {
			return fmt.Errorf("no audit record for %s", name)
		}
		m.decisionMS = ms[0]
		return nil
	})
	return m
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// reason picks crictl's error line (not its warnings) out of its stderr.
func reason(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, l := range lines {
		if i := strings.Index(l, "reason: "); i >= 0 {
			return strings.TrimSuffix(l[i+len("reason: "):], `"`)
		}
	}
	return lines[len(lines)-1]
}
