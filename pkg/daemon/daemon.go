// Package daemon wires the node daemon ("nri-csig run"): the node config, the
// decision sources, the NRI plugin, containerd, the audit trail, metrics,
// systemd notification and reloads. It holds no decision logic of its own.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nri-csig/nri-csig/internal/ctrdconn"
	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/internal/version"
	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/bundleoci"
	"github.com/nri-csig/nri-csig/pkg/bundlestore"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
	"github.com/nri-csig/nri-csig/pkg/watch"
	"github.com/nri-csig/nri-csig/pkg/witnessverify"
)

// Config is everything "nri-csig run" was told.
type Config struct {
	// ConfigPath is the node config file; when ConfigOptional, a missing file
	// means the defaults (no allow lists).
	ConfigPath     string
	ConfigOptional bool

	Connection          plugin.Connection
	ContainerdAddress   string
	ContainerdNamespace string
	DecisionTimeout     time.Duration
	// MetricsAddress serves /metrics, /readyz and /healthz; empty: off.
	MetricsAddress string
	// DebugPprof also serves Go's runtime profiles (net/http/pprof, under
	// /debug/pprof/) on the metrics listener: for measuring the daemon's
	// heap, never on by default.
	DebugPprof bool
	// GCPercent is the garbage collector's target (GOGC); 0: the GOGC
	// environment variable if set, else DefaultGCPercent.
	GCPercent int
	// WatchContainerd judges containers created outside the CRI (ctr, nerdctl,
	// containerd clients), which NRI never sees, when their tasks start.
	WatchContainerd bool
	// StopUntrusted stops running containers found untrusted when judged again.
	StopUntrusted bool
	// SandboxImageConfigs are the config digests of the CRI's sandbox image
	// (empty: the images the CRI pinned); see watch.Options.SandboxConfigs.
	SandboxImageConfigs []string

	Log   *slog.Logger
	Audit audit.Sink
}

// bootBundleTimeout bounds how long boot waits for the bundle sources
// before it registers with NRI: with the last good bundle in force, or fail
// closed (allow lists only) without one. The store keeps polling afterwards.
const bootBundleTimeout = 5 * time.Second

// preInstalledBootBound bounds, when containerd launched the daemon
// (pre-installed), the time from the launch to registering with NRI:
// containerd gives a plugin it launched plugin_registration_timeout (5 s by
// default and in the packaged drop-in) from the launch, and stops one that
// misses it, which leaves the node refusing every container until
// containerd restarts; at 10,000 images on a slow machine the next start
// would miss it again. 3 s leaves 2 s for the registration itself.
const preInstalledBootBound = 3 * time.Second

// processStart is about when the process started (this package's init).
var processStart = time.Now()

// bootDeadline is when boot stops waiting for the image index (and,
// pre-installed, for the bundle sources) and registers: bootBundleTimeout
// after bootStart, or, when pre-installed, preInstalledBootBound after the
// process started if that is sooner.
func bootDeadline(processStart, bootStart time.Time, preInstalled bool) time.Time {
	d := bootStart.Add(bootBundleTimeout)
	if p := processStart.Add(preInstalledBootBound); preInstalled && p.Before(d) {
		return p
	}
	return d
}

// freshnessInterval is how often the bundle in force is dated (stale, expired).
const freshnessInterval = 30 * time.Second

// daemon is one running node daemon.
type daemon struct {
	// The node-integrity guard of the node config in force (integrity.go).
	guard guardSource

	cfg     Config
	log     *slog.Logger
	audit   audit.Sink
	metrics *metrics
	plugin  *plugin.Plugin
	sigs    *verify.Store
	fetch   *prefetcher
	bundles atomic.Pointer[bundlestore.Store] // nil: no bundle configured; a reload may add or remove it
	images  *imagestore.Index
	// registry is the daemon's one registry client (nil in unit tests).
	registry *registry.Client
	// rejudge asks the re-judging loop to judge the running containers
	// again; requests that arrive while one is pending are one.
	rejudge chan string
	// gc asks gcLoop to forget the signatures of images that left the node.
	gc        chan struct{}
	reloadMu  sync.Mutex // one reload at a time
	deciderMu sync.Mutex // serializes refreshDecider
	mu        sync.Mutex // guards what follows
	node      *nodeconfig.Config
	// stopBundles ends the bundle store's polling (when a reload removes the
	// bundle section).
	stopBundles context.CancelFunc
	alarms      alarmState
}

// Run runs the daemon until ctx ends or SIGTERM/SIGINT.
func Run(ctx context.Context, cfg Config) error {
	registerBy := bootDeadline(processStart, time.Now(), plugin.PreInstalled())
	d := &daemon{cfg: cfg, log: cfg.Log, audit: cfg.Audit, metrics: newMetrics(), rejudge: make(chan string, 1), gc: make(chan struct{}, 1)}
	witnessverify.SetLogger(d.log) // nri-csigd's certificate verifier process
	node, err := d.loadNodeConfig()
	if err == nil {
		err = checkNode(node) // exactly what check-config runs
	}
	if err != nil {
		d.log.Error("refusing to start", "error", err)
		return err
	}
	d.node = node
	for _, dg := range cfg.SandboxImageConfigs {
		if _, err := digest.Parse(dg); err != nil {
			err = fmt.Errorf("--sandbox-image-config %q: %v; give the sandbox image's config digest, the CRI image ID that \"crictl inspecti IMAGE\" shows as status.id", dg, err)
			d.log.Error("refusing to start", "error", err)
			return err
		}
	}

	setGCPercent(cfg.GCPercent, d.log)
	client, err := ctrdconn.Dial(cfg.ContainerdAddress, cfg.ContainerdNamespace)
	if err != nil {
		return fmt.Errorf("connecting to containerd at %s: %w", cfg.ContainerdAddress, err)
	}
	defer client.Close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d.startRootLearner(ctx, node) // for the node-integrity guard

	// The image index follows containerd's image events itself (with or
	// without the watcher), and boot verification walks it once built. It
	// is built while the signature store below replays its log and the
	// bundle loads: neither needs the other, and at 10,000 images each
	// takes seconds. Its callbacks wait until what they use is wired.
	d.images = imagestore.New(client.ImageService(), imagestore.ContentAPI(client.GRPC()), cfg.ContainerdNamespace, imagestore.WithLogger(cfg.Log))
	d.metrics.watchImages(d.images)
	indexed, wired := make(chan struct{}), make(chan struct{})
	var indexedOnce sync.Once
	whenWired := func(ctx context.Context) bool {
		select {
		case <-wired:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go d.images.Follow(ctx, client.EventService(), func(ctx context.Context) {
		indexedOnce.Do(func() { close(indexed) })
		if whenWired(ctx) {
			d.prefetchAll(ctx)
		}
	}, func(ctx context.Context, name string) {
		if whenWired(ctx) {
			d.onImage(ctx, cfg.ContainerdNamespace, name)
			d.requestGC()
		}
	})

	// One registry client for the daemon's life: signature discovery and
	// bundle polling share its connections, timeouts and handshakes.
	reg, err := newRegistryClient(node, d.log)
	if err != nil {
		d.log.Error("refusing to start", "error", err)
		return err
	}
	d.registry = reg
	d.sigs = newSignatureStore(node, verify.WithClient(d.registry), verify.WithPartialHook(d.onPartialDiscovery))
	d.fetch = newPrefetcher(d.sigs)
	defer d.sigs.Close()
	if err := d.sigs.PersistError(); err != nil {
		d.log.Error("the signature state directory cannot be read or written; verified signatures are kept in memory only", "error", err)
	}
	d.fetch.onError = func(digest string, err error) {
		if errors.Is(err, verify.ErrPersist) {
			// The state directory (read-only, full), not the registry: what
			// was verified still counts, it is only not kept across restarts.
			d.metrics.persistErrors.Inc()
			d.log.Error("keeping verified signatures on disk failed", "digest", digest, "error", err)
			return
		}
		d.metrics.registryErrors.Inc()
		d.log.Warn("signature discovery failed", "digest", digest, "error", err)
	}
	if node.Bundle.Configured() {
		st, err := d.openBundleStore(ctx, node)
		if err != nil {
			d.log.Error("refusing to start", "error", err)
			return err
		}
		d.bundles.Store(st)
		// At most 5 s for the sources, as ever; pre-installed, what is left
		// until registerBy (a bundle file is read all the same: only
		// registries are cut short, and polled again in the background).
		wait := bootBundleTimeout
		if plugin.PreInstalled() {
			wait = time.Until(registerBy)
		}
		d.loadBundle(ctx, st, node, wait)
		d.applyBundleKeys()
	}

	opts := plugin.Options{DecisionTimeout: cfg.DecisionTimeout, Audit: cfg.Audit, Observe: d.observe}
	if cfg.StopUntrusted {
		opts.Stopper = taskStopper{client: client, namespace: cfg.ContainerdNamespace}
	}
	opts.Rejudge = d.requestRejudge     // one owner of re-judging (rejudgeLoop)
	opts.Integrity = d.integrityInForce // follows d.node: reloads need no extra step
	d.plugin = plugin.New(d.decider(node), d.images, cfg.Log, opts)
	if st := d.bundles.Load(); st != nil {
		d.runBundles(ctx, st, false)
	}
	close(wired) // the index's callbacks may run from here on
	go d.gcLoop(ctx)
	d.metrics.watchStore(d.sigs)
	go d.rejudgeLoop(ctx)
	d.checkAlarms(node)
	go d.watchFreshness(ctx)

	if cfg.MetricsAddress != "" {
		srv, addr, err := d.metrics.serve(cfg.MetricsAddress, cfg.DebugPprof, d.plugin.Ready, d.readyDetail, func(err error) {
			d.log.Error("the metrics server stopped; /metrics and /readyz are no longer served", "address", cfg.MetricsAddress, "error", err)
		})
		if err != nil {
			return fmt.Errorf("serving metrics on %s: %w (use --metrics-address to pick another, or \"\" to turn it off)", cfg.MetricsAddress, err)
		}
		defer srv.Close()
		d.log.Info("serving /metrics and /readyz", "address", addr.String())
	}
	if cfg.WatchContainerd {
		w := watch.New(client, watch.Options{
			CRINamespace:   cfg.ContainerdNamespace,
			KnownToNRI:     d.plugin.Known,
			SandboxConfigs: cfg.SandboxImageConfigs,
			Index:          d.watchIndex,
			Decider:        func() watch.Decider { return d.plugin.CurrentDecider() },
			Audit:          cfg.Audit, Log: cfg.Log, Stop: cfg.StopUntrusted, Observe: d.observe,
		})
		d.metrics.watchWatcher(w)
		go w.Run(ctx)
	}
	go d.notifySystemd(ctx)
	go d.reloadOnSIGHUP(ctx)

	d.log.Info("nri-csig starting", "version", version.String(), "config", cfg.ConfigPath,
		"cluster", node.Cluster, "allowlisted_namespaces", len(node.Allowlists), "stop_untrusted", cfg.StopUntrusted,
		"pre_installed", plugin.PreInstalled(), "nri_socket", cfg.Connection.Socket, "containerd", cfg.ContainerdAddress)
	d.awaitIndex(ctx, indexed, time.Until(registerBy))
	err = d.plugin.Run(ctx, cfg.Connection)
	sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	if err != nil {
		d.log.Error("nri-csig stopped", "error", err)
		return err
	}
	d.log.Info("nri-csig stopped")
	return nil
}

// loadBundle brings a bundle store up within timeout: the last good bundle
// from the state directory, then one read of every source.
func (d *daemon) loadBundle(ctx context.Context, st *bundlestore.Store, node *nodeconfig.Config, timeout time.Duration) {
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := st.Load(bctx); err != nil {
		// Fail closed: until a bundle is in force, only allow-listed images run.
		d.log.Error("no policy bundle can be put in force; refusing every container that is not on an allow list until one is",
			"bundle_file", node.Bundle.File, "bundle_oci", node.Bundle.OCI, "error", err)
	}
}

// runBundles polls st in the background until ctx ends or a reload removes
// the bundle section; first loads it (bounded) when load is set.
func (d *daemon) runBundles(ctx context.Context, st *bundlestore.Store, load bool) {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.stopBundles = cancel
	node := d.node
	d.mu.Unlock()
	go func() {
		if load {
			d.loadBundle(ctx, st, node, bootBundleTimeout)
		}
		st.Run(ctx)
	}()
}

func (d *daemon) loadNodeConfig() (*nodeconfig.Config, error) {
	if _, err := os.Stat(d.cfg.ConfigPath); errors.Is(err, os.ErrNotExist) && d.cfg.ConfigOptional {
		return nodeconfig.Default(), nil
	}
	return nodeconfig.Load(d.cfg.ConfigPath)
}

// refreshDecider puts in force the decision of the node config and the
// bundle in force now, and returns that node config. Calls are serialized
// and each reads both afresh, so the last swap reflects the latest of both
// even when a bundle reload and a config reload race.
func (d *daemon) refreshDecider() *nodeconfig.Config {
	d.deciderMu.Lock()
	defer d.deciderMu.Unlock()
	d.mu.Lock()
	node := d.node
	d.mu.Unlock()
	d.plugin.SetDecider(d.decider(node))
	return node
}

// decider builds the decision of a node config and the bundle in force.
func (d *daemon) decider(node *nodeconfig.Config) plugin.Decider {
	dc := &decider{node: node, sigs: d.sigs, fetch: d.fetch, now: time.Now}
	if st := d.bundles.Load(); st != nil {
		dc.bundle = st.Current()
		dc.bundleMissing = dc.bundle == nil
	}
	if dc.bundle != nil {
		dc.sigRepos = dc.bundle.SignatureRepositories(node.Cluster)
	}
	d.useSignatureRepositories(dc.sigRepos)
	return dc
}

// newSignatureStore returns where the node finds and keeps signatures.
func newSignatureStore(node *nodeconfig.Config, opts ...verify.RegistryOption) *verify.Store {
	var sources []verify.SignatureFetcher
	if node.Signatures.Registry {
		sources = append(sources, verify.NewRegistry(append([]verify.RegistryOption{verify.WithInsecureHosts(node.Signatures.InsecureRegistries...)}, opts...)...))
	}
	if node.Signatures.Dir != "" {
		sources = append(sources, verify.NewDir(node.Signatures.Dir))
	}
	var persist *verify.Dir
	if node.StateDir != "" {
		persist = verify.NewDir(filepath.Join(node.StateDir, "signatures"))
	}
	st := verify.NewStore(persist, sources...)
	st.Insecure = node.Signatures.InsecureRegistries
	return st
}

// onPartialDiscovery records a signature discovery that kept what it read
// although a part of it failed (the referrers API, one referrer, a layer).
func (d *daemon) onPartialDiscovery(image name.Digest, err error) {
	d.metrics.partialDiscoveries.Inc()
	d.log.Warn("signature discovery partial: kept the signatures read, the rest failed", "image", image.String(), "error", err)
}

// openBundleStore builds the policy bundle store the node config describes.
func (d *daemon) openBundleStore(ctx context.Context, node *nodeconfig.Config) (*bundlestore.Store, error) {
	opts := []bundlestore.StoreOption{
		bundlestore.WithInterval(node.Bundle.Interval),
		bundlestore.WithLogger(d.log),
		bundlestore.WithReloadHook(d.onBundleReload),
	}
	if node.StateDir != "" {
		opts = append(opts, bundlestore.WithStateDir(filepath.Join(node.StateDir, "bundle")))
	}
	if node.Bundle.File != "" {
		opts = append(opts, bundlestore.WithFileSource(node.Bundle.File))
	}
	if node.Bundle.OCI != "" {
		opts = append(opts, bundlestore.WithOCISource(node.Bundle.OCI, bundleoci.WithRegistryClient(d.registry)))
	}
	if node.Bundle.SigningKey != "" {
		pub, err := openSigningKey(node.Bundle.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("bundle.signingKey: %w", err)
		}
		opts = append(opts, bundlestore.WithSigningKey(pub))
	}
	return bundlestore.NewStore(opts...)
}

// applyBundleKeys gives the signature store every witness key of the bundle
// in force (signatures are re-verified locally, no network).
func (d *daemon) applyBundleKeys() {
	var ks []verify.Key
	var serial uint64
	if st := d.bundles.Load(); st != nil {
		if b := st.Current(); b != nil {
			ks = witnessverify.All(b.Keys(), func(k *policy.Key, err error) {
				d.log.Error("witness cannot be verified: its signatures count for nothing", "witness", k.Witness, "key", k.Fingerprint, "error", err)
			})
			serial = b.Serial
		}
	}
	d.metrics.bundleSerial.Set(float64(serial))
	d.sigs.SetKeys(ks)
}

// onBundleReload is called by the bundle store on every reload: one audit
// record each, and a new bundle takes effect at once, for new containers and
// for the running ones, judged again.
func (d *daemon) onBundleReload(ev bundlestore.ReloadEvent) {
	rec := audit.Record{Event: "reload", Decision: string(ev.Outcome), Rule: "bundle", BundleSerial: int64(ev.Serial),
		Reason: fmt.Sprintf("policy bundle from %s: %s (serial in force: %d)", ev.Source, ev.Outcome, ev.InForce)}
	if ev.Digest != "" {
		rec.Digest = ev.Digest
	}
	if ev.Err != nil {
		rec.Reason += ": " + ev.Err.Error()
	}
	d.audit.Write(rec)
	switch ev.Outcome {
	case bundlestore.Loaded, bundlestore.Restored:
		d.metrics.reloads.WithLabelValues("accepted").Inc()
		d.metrics.reloadOK.Set(1)
		if d.plugin == nil {
			return // at boot: the decider is built once everything is open
		}
		d.applyBundleKeys()
		node := d.refreshDecider()
		d.checkAlarms(node)
		d.requestRejudge(fmt.Sprintf("bundle serial %d", ev.InForce))
	default:
		d.metrics.reloads.WithLabelValues("refused").Inc()
		d.metrics.reloadOK.Set(0)
		d.log.Error("policy bundle refused or unavailable; the bundle in force stays", "source", ev.Source,
			"outcome", string(ev.Outcome), "serial", ev.Serial, "in_force", ev.InForce, "error", ev.Err)
	}
}

// onImage verifies the signatures of an image as soon as it lands on the
// node, so that the container's request finds them in memory. The index has
// already applied the event (imagestore.Index.Follow calls this).
func (d *daemon) onImage(ctx context.Context, ns, name string) {
	if ns != d.cfg.ContainerdNamespace || d.bundles.Load() == nil {
		return
	}
	for _, c := range d.images.RecordCandidates(name) {
		if d.fetchable(c) {
			d.fetch.start(c.Digest, c.Repositories)
		}
	}
}

// gcDelay is how long the signature store's garbage collection waits after
// an image event, so that a burst of deletions costs one pass.
const gcDelay = 10 * time.Second

// awaitIndex waits, at most wait, for the first build of the image index
// before the plugin registers: a decision made before it waits for it, and
// at 10,000 images the build can outlast the decision's deadline (a refusal
// for time). Registration stays within the boot bound (bootDeadline: 5 s from
// start, 3 s from launch when pre-installed, within containerd's
// registration timeout); past it the plugin registers and decisions wait.
func (d *daemon) awaitIndex(ctx context.Context, indexed <-chan struct{}, wait time.Duration) {
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-indexed:
	case <-ctx.Done():
	case <-t.C:
		d.log.Warn("registering before the image index is built; decisions wait for it", "waited", wait.String())
	}
}

// requestGC asks gcLoop for a pass; requests made meanwhile are one.
func (d *daemon) requestGC() {
	select {
	case d.gc <- struct{}{}:
	default:
	}
}

// gcLoop forgets the signatures of digests no image record of the CRI
// namespace leads to any more (images deleted from the node), so that the
// store does not grow with every image the node ever had. It runs after a
// complete index listing only: a partial one would forget good state.
// Digests of images in other containerd namespaces are forgotten too and
// looked up again when a container of theirs is judged.
func (d *daemon) gcLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.gc:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gcDelay):
		}
		cands, err := d.images.Candidates(ctx)
		if err != nil {
			d.log.Warn("signature store garbage collection skipped: the image index is not complete", "error", err)
			continue
		}
		live := make([]string, len(cands))
		for i, c := range cands {
			live[i] = c.Digest
		}
		before := d.sigs.Len()
		d.sigs.Retain(live)
		if after := d.sigs.Len(); before-after > releaseAfterForgetting {
			d.compactMemory()
			releaseMemory()
		}
	}
}

// releaseAfterForgetting is how many digests one garbage collection of the
// signature store must forget for the daemon to return the memory at once.
const releaseAfterForgetting = 1000

// prefetchWorkers bounds the signature look-ups boot verification runs at once.
const prefetchWorkers = 8

// watchIndex gives the watcher the daemon's index of the CRI namespace; the
// watcher indexes other namespaces itself.
func (d *daemon) watchIndex(ns string) watch.ChainIndex {
	if ns == d.cfg.ContainerdNamespace {
		return d.images
	}
	return nil
}

// prefetchAll loads or verifies the signatures of every image digest of the
// node, walking the image index once (called each time it is built).
func (d *daemon) prefetchAll(ctx context.Context) {
	d.requestGC() // the index is complete: what it does not lead to can go
	if d.bundles.Load() == nil {
		return
	}
	cands, err := d.images.Candidates(ctx)
	if err != nil {
		d.log.Warn("listing images to verify their signatures", "error", err)
		return
	}
	work := make(chan imagestore.Candidate)
	var wg sync.WaitGroup
	for range prefetchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if !d.sigs.Load(ctx, c.Digest) && d.fetchable(c) {
					select {
					case <-d.fetch.start(c.Digest, c.Repositories):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	for _, c := range cands {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	d.sigs.Compact(nil) // boot's garbage surrounds the store's entries
	releaseMemory()     // boot's garbage: manifests, signatures, answers read
}

// fetchable reports whether a source could hold the signatures of c: an
// image known only by ID (record "sha256:...") has no repository, so only a
// signature directory can answer, never a registry.
func (d *daemon) fetchable(c imagestore.Candidate) bool {
	if len(c.Repositories) > 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.node.Signatures.Dir != ""
}

func (d *daemon) observe(event string, v policy.Verdict, took time.Duration) {
	d.metrics.observe(event, v, took)
	if event == "running" && !v.Allowed() {
		d.metrics.untrusted.Inc()
	}
}

// reload re-reads the node config and applies all of it, or none: a config
// that daemon start would refuse, or that changes a setting only a restart
// applies ("needs a restart: <field>"), is refused loudly and the one in force
// stays. An accepted one takes effect at the next decision: the bundle
// section is added, removed or re-pointed (sources, signing key, interval)
// at once, and the sources are read in the background, so that a reload
// never waits behind a hung fetch. Every running container is judged again.
func (d *daemon) reload(ctx context.Context, why string) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	cur := d.node
	d.mu.Unlock()
	node, err := d.loadNodeConfig()
	if err == nil {
		err = checkNode(node)
	}
	if err == nil {
		err = needsRestart(cur, node)
	}
	var next *bundlestore.Store
	if err == nil && node.Bundle.Configured() {
		next, err = d.openBundleStore(ctx, node)
	}
	if err != nil {
		d.metrics.reloads.WithLabelValues("refused").Inc()
		d.metrics.reloadOK.Set(0)
		d.audit.Write(audit.Record{Event: "reload", Decision: "refused", Rule: "node-config", Reason: fmt.Sprintf("%s: the configuration in force stays: %v", why, err)})
		d.log.Error("reload refused; the configuration in force stays", "trigger", why, "error", err)
		return
	}
	d.mu.Lock()
	d.node = node
	d.mu.Unlock()
	d.startRootLearner(ctx, node) // a config that named containerd's root may no longer
	change := d.applyBundleSection(ctx, next)
	d.refreshDecider()
	d.metrics.reloads.WithLabelValues("accepted").Inc()
	d.metrics.reloadOK.Set(1)
	reason := why
	if change != "" {
		reason += ": " + change
	}
	d.audit.Write(audit.Record{Event: "reload", Decision: "accepted", Rule: "node-config", Reason: reason})
	d.log.Info("configuration reloaded", "trigger", why, "bundle", change, "cluster", node.Cluster, "allowlisted_namespaces", len(node.Allowlists))
	d.checkAlarms(node)
	d.requestRejudge(why)
}

// applyBundleSection puts the reloaded bundle section in force (next: the
// store it describes, nil without one) and says what changed.
func (d *daemon) applyBundleSection(ctx context.Context, next *bundlestore.Store) string {
	cur := d.bundles.Load()
	switch {
	case cur == nil && next == nil:
		return ""
	case cur == nil:
		// Fail closed until the new bundle is read: allow lists only.
		d.bundles.Store(next)
		d.runBundles(ctx, next, true)
		return "bundle section added: its bundle is enforced once read; until then only allow-listed images run"
	case next == nil:
		d.mu.Lock()
		stop := d.stopBundles
		d.stopBundles = nil
		d.mu.Unlock()
		if stop != nil {
			stop()
		}
		d.bundles.Store(nil)
		d.applyBundleKeys()
		d.log.Warn("the bundle section was removed: no security policy is enforced any more, only allow lists and the uncovered rule")
		return "bundle section removed: no security policy is enforced"
	}
	// The same or changed sources and signing key (a key file may change
	// in place): the bundle in force stays, and the sources are judged again
	// under the new settings at once.
	cur.Reconfigure(next)
	return "bundle sources and signing key re-read"
}

// requestRejudge asks the re-judging loop to judge the running containers
// again; it never blocks, and requests made while one is pending are one.
func (d *daemon) requestRejudge(why string) {
	select {
	case d.rejudge <- why:
	default:
	}
}

// rejudgeLoop is the one owner of re-judging: one pass at a time, until ctx ends.
func (d *daemon) rejudgeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case why := <-d.rejudge:
			if n := d.plugin.Rejudge(ctx, why); n > 0 {
				d.log.Warn("running containers are not trusted under the new configuration or bundle", "count", n, "trigger", why)
			}
		}
	}
}

func (d *daemon) reloadOnSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.reload(ctx, "SIGHUP")
		}
	}
}

// notifySystemd tells systemd (Type=notify) the daemon is ready once it is
// registered with NRI, and pings the watchdog while the process is healthy.
func (d *daemon) notifySystemd(ctx context.Context) {
	interval, _ := sddaemon.SdWatchdogEnabled(false)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	readySent := false
	lastPing := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ready := d.plugin.Ready()
		d.metrics.connected.Set(boolGauge(ready))
		if !readySent && ready {
			sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
			readySent = true
		}
		if interval > 0 && time.Since(lastPing) > interval/2 {
			sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			lastPing = time.Now()
		}
	}
}

// taskStopper stops a container through containerd's API. A running one
// is killed. A created one has no task yet, and killing cannot stop its start:
// the CRI, which owns it, is asked to remove it (CRI RemoveContainer on
// containerd's socket), so that it can never start, even when nri-csig is not
// connected at that moment. Deleting its containerd record instead is not an
// option: containerd 2.4.2 then panics in the next NRI synchronization
// (internal/cri/nri GetRlimits on the container's missing spec).
type taskStopper struct {
	client    *ctrdconn.Conn
	namespace string
}

func (s taskStopper) Stop(ctx context.Context, id, _ string) error {
	ctx = namespaces.WithNamespace(ctx, s.namespace)
	if _, err := s.client.ContainerService().Get(ctx, id); err != nil {
		return err
	}
	task, err := s.client.LoadTask(ctx, id)
	if err == nil {
		return task.Kill(ctx, syscall.SIGKILL, false)
	}
	if !errdefs.IsNotFound(err) {
		return err
	}
	cri := runtimeapi.NewRuntimeServiceClient(s.client.GRPC())
	st, err := cri.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return fmt.Errorf("no task to kill, and the CRI cannot say what state the container is in: %w", err)
	}
	switch state := st.GetStatus().GetState(); state {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		if _, err := cri.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			return fmt.Errorf("removing the created container through the CRI before it starts: %w", err)
		}
		return nil
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return nil // nothing runs; kubelet's restart is judged at creation
	default:
		return fmt.Errorf("no task to kill, and the CRI reports the container %s", state)
	}
}
