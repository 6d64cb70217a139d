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
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/nri-csig/nri-csig/internal/version"
	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
	"github.com/nri-csig/nri-csig/pkg/watch"
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
	// WatchContainerd judges containers created outside the CRI (ctr, nerdctl,
	// containerd clients), which NRI never sees, when their tasks start.
	WatchContainerd bool
	// StopUntrusted stops running containers found untrusted when judged again.
	StopUntrusted bool

	Log   *slog.Logger
	Audit audit.Sink
}

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
	bundles *policy.Store // nil: no bundle configured
	images  *imagestore.Resolver

	mu   sync.Mutex
	node *nodeconfig.Config
}

// Run runs the daemon until ctx ends or SIGTERM/SIGINT.
func Run(ctx context.Context, cfg Config) error {
	d := &daemon{cfg: cfg, log: cfg.Log, audit: cfg.Audit, metrics: newMetrics()}
	node, err := d.loadNodeConfig()
	if err != nil {
		d.log.Error("refusing to start", "error", err)
		return err
	}
	d.node = node

	client, err := containerd.New(cfg.ContainerdAddress, containerd.WithDefaultNamespace(cfg.ContainerdNamespace))
	if err != nil {
		return fmt.Errorf("connecting to containerd at %s: %w", cfg.ContainerdAddress, err)
	}
	defer client.Close()
	d.guard.ctrdRoot = containerdRoot(ctx, client) // for the node-integrity guard

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	d.sigs = newSignatureStore(node)
	d.fetch = newPrefetcher(d.sigs)
	d.fetch.onError = func(digest string, err error) {
		d.metrics.registryErrors.Inc()
		d.log.Warn("signature discovery failed", "digest", digest, "error", err)
	}
	if node.Bundle.Configured() {
		if d.bundles, err = d.openBundleStore(ctx, node); err != nil {
			d.log.Error("refusing to start", "error", err)
			return err
		}
		if err := d.bundles.Load(ctx); err != nil {
			// Fail closed: until a bundle is in force, only allow-listed images run.
			d.log.Error("no policy bundle can be put in force; refusing every container that is not on an allow list until one is",
				"bundle_file", node.Bundle.File, "bundle_oci", node.Bundle.OCI, "error", err)
		}
		d.applyBundleKeys()
	}

	d.images = imagestore.New(client.ImageService(), client.ContentStore(), cfg.ContainerdNamespace)
	opts := plugin.Options{DecisionTimeout: cfg.DecisionTimeout, Audit: cfg.Audit, Observe: d.observe}
	if cfg.StopUntrusted {
		opts.Stopper = taskStopper{client: client, namespace: cfg.ContainerdNamespace}
	}
	opts.Integrity = d.integrityInForce // follows d.node: reloads need no extra step
	d.plugin = plugin.New(d.decider(node), d.images, cfg.Log, opts)
	if d.bundles != nil {
		go d.bundles.Run(ctx)
	}
	go d.prefetchAll(ctx)
	d.metrics.watchStore(d.sigs)

	if cfg.MetricsAddress != "" {
		srv, addr, err := d.metrics.serve(cfg.MetricsAddress, d.plugin.Ready)
		if err != nil {
			return fmt.Errorf("serving metrics on %s: %w (use --metrics-address to pick another, or \"\" to turn it off)", cfg.MetricsAddress, err)
		}
		defer srv.Close()
		d.log.Info("serving /metrics and /readyz", "address", addr.String())
	}
	if cfg.WatchContainerd {
		w := watch.New(client, watch.Options{
			CRINamespace: cfg.ContainerdNamespace,
			KnownToNRI:   d.plugin.Known,
			Decider:      func() watch.Decider { return d.plugin.CurrentDecider() },
			Audit:        cfg.Audit, Log: cfg.Log, Stop: cfg.StopUntrusted, Observe: d.observe,
			OnImage: d.onImage,
		})
		go w.Run(ctx)
	}
	go d.notifySystemd(ctx)
	go d.reloadOnSIGHUP(ctx)

	d.log.Info("nri-csig starting", "version", version.String(), "config", cfg.ConfigPath,
		"cluster", node.Cluster, "allowlisted_namespaces", len(node.Allowlists), "stop_untrusted", cfg.StopUntrusted,
		"pre_installed", plugin.PreInstalled(), "nri_socket", cfg.Connection.Socket, "containerd", cfg.ContainerdAddress)
	err = d.plugin.Run(ctx, cfg.Connection)
	sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	if err != nil {
		d.log.Error("nri-csig stopped", "error", err)
		return err
	}
	d.log.Info("nri-csig stopped")
	return nil
}

func (d *daemon) loadNodeConfig() (*nodeconfig.Config, error) {
	if _, err := os.Stat(d.cfg.ConfigPath); errors.Is(err, os.ErrNotExist) && d.cfg.ConfigOptional {
		return nodeconfig.Default(), nil
	}
	return nodeconfig.Load(d.cfg.ConfigPath)
}

// decider builds the decision of a node config and the bundle in force.
func (d *daemon) decider(node *nodeconfig.Config) plugin.Decider {
	dc := &decider{node: node, sigs: d.sigs, fetch: d.fetch, now: time.Now}
	if d.bundles != nil {
		dc.bundle = d.bundles.Current()
		dc.bundleMissing = dc.bundle == nil
	}
	return dc
}

// newSignatureStore returns where the node finds and keeps signatures.
func newSignatureStore(node *nodeconfig.Config) *verify.Store {
	var sources []verify.SignatureFetcher
	if node.Signatures.Registry {
		sources = append(sources, verify.NewRegistry(verify.WithInsecureHosts(node.Signatures.InsecureRegistries...)))
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

// openBundleStore builds the policy bundle store the node config describes.
func (d *daemon) openBundleStore(ctx context.Context, node *nodeconfig.Config) (*policy.Store, error) {
	opts := []policy.StoreOption{
		policy.WithInterval(node.Bundle.Interval),
		policy.WithLogger(d.log),
		policy.WithReloadHook(d.onBundleReload),
	}
	if node.StateDir != "" {
		opts = append(opts, policy.WithStateDir(filepath.Join(node.StateDir, "bundle")))
	}
	if node.Bundle.File != "" {
		opts = append(opts, policy.WithFileSource(node.Bundle.File))
	}
	if node.Bundle.OCI != "" {
		opts = append(opts, policy.WithOCISource(node.Bundle.OCI, policy.WithInsecureRegistries(node.Signatures.InsecureRegistries...)))
	}
	if node.Bundle.SigningKey != "" {
		pub, err := keys.OpenPublic(ctx, node.Bundle.SigningKey, keys.Options{})
		if err != nil {
			return nil, fmt.Errorf("bundle.signingKey: %w", err)
		}
		opts = append(opts, policy.WithSigningKey(pub))
	}
	return policy.NewStore(opts...)
}

// applyBundleKeys gives the signature store every witness key of the bundle
// in force (signatures are re-verified locally, no network).
func (d *daemon) applyBundleKeys() {
	var ks []verify.Key
	if b := d.bundles.Current(); b != nil {
		for _, k := range b.Keys() {
			ks = append(ks, verify.Key{Name: k.Fingerprint, Public: k.PublicKey, Algorithm: k.Algorithm})
		}
		d.metrics.bundleSerial.Set(float64(b.Serial))
	}
	d.sigs.SetKeys(ks)
}

// onBundleReload is called by the bundle store on every reload: one audit
// record each, and a new bundle takes effect at once, for new containers and
// for the running ones, judged again.
func (d *daemon) onBundleReload(ev policy.ReloadEvent) {
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
	case policy.Loaded, policy.Restored:
		d.metrics.reloads.WithLabelValues("accepted").Inc()
		d.metrics.reloadOK.Set(1)
		if d.plugin == nil {
			return // at boot: the decider is built once everything is open
		}
		d.applyBundleKeys()
		d.mu.Lock()
		node := d.node
		d.mu.Unlock()
		d.plugin.SetDecider(d.decider(node))
		go func() {
			if n := d.plugin.Rejudge(context.Background(), fmt.Sprintf("bundle serial %d", ev.InForce)); n > 0 {
				d.log.Warn("running containers are not trusted under the new bundle", "count", n, "serial", ev.InForce)
			}
		}()
	default:
		d.metrics.reloads.WithLabelValues("refused").Inc()
		d.metrics.reloadOK.Set(0)
		d.log.Error("policy bundle refused or unavailable; the bundle in force stays", "source", ev.Source,
			"outcome", string(ev.Outcome), "serial", ev.Serial, "in_force", ev.InForce, "error", ev.Err)
	}
}

// onImage verifies the signatures of an image as soon as it lands on the
// node, so that the container's request finds them in memory.
func (d *daemon) onImage(ctx context.Context, ns, name string) {
	if ns != d.cfg.ContainerdNamespace {
		return
	}
	d.images.Invalidate() // which digests carry which config may have changed
	if d.bundles == nil {
		return
	}
	digests, repo, err := d.images.Record(ctx, name)
	if err != nil || len(digests) == 0 {
		return
	}
	var repos []string
	if repo != "" {
		repos = []string{repo}
	}
	for _, dg := range digests {
		d.fetch.start(dg, repos)
	}
}

// prefetchAll loads or verifies the signatures of every image on the node at
// startup.
func (d *daemon) prefetchAll(ctx context.Context) {
	if d.bundles == nil {
		return
	}
	recs, err := d.images.Names(ctx)
	if err != nil {
		d.log.Warn("listing images to verify their signatures", "error", err)
		return
	}
	for _, name := range recs {
		digests, repo, err := d.images.Record(ctx, name)
		if err != nil {
			continue
		}
		for _, dg := range digests {
			if !d.sigs.Load(ctx, dg) {
				d.fetch.start(dg, []string{repo})
			}
		}
	}
}

func (d *daemon) observe(event string, v policy.Verdict, took time.Duration) {
	d.metrics.observe(event, v, took)
	if event == "running" && !v.Allowed() {
		d.metrics.untrusted.Inc()
	}
}

// reload re-reads the node config. A bad one is refused loudly and the one in
// force stays; a good one takes effect at the next decision, and every running
// container is judged again.
func (d *daemon) reload(ctx context.Context, why string) {
	node, err := d.loadNodeConfig()
	if err != nil {
		d.metrics.reloads.WithLabelValues("refused").Inc()
		d.metrics.reloadOK.Set(0)
		d.audit.Write(audit.Record{Event: "reload", Decision: "refused", Reason: fmt.Sprintf("%s: the configuration in force stays: %v", why, err)})
		d.log.Error("reload refused; the configuration in force stays", "trigger", why, "error", err)
		return
	}
	d.mu.Lock()
	d.node = node
	d.mu.Unlock()
	if d.bundles != nil {
		d.bundles.Reload(ctx) // its hook swaps the decider when the bundle changed
	}
	d.plugin.SetDecider(d.decider(node))
	d.metrics.reloads.WithLabelValues("accepted").Inc()
	d.metrics.reloadOK.Set(1)
	d.audit.Write(audit.Record{Event: "reload", Decision: "accepted", Rule: "node-config", Reason: why})
	d.log.Info("configuration reloaded", "trigger", why, "cluster", node.Cluster, "allowlisted_namespaces", len(node.Allowlists))
	if n := d.plugin.Rejudge(ctx, why); n > 0 {
		d.log.Warn("running containers are not trusted under the new configuration", "count", n)
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
		if !readySent && d.plugin.Ready() {
			sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
			readySent = true
		}
		if interval > 0 && time.Since(lastPing) > interval/2 {
			sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			lastPing = time.Now()
		}
	}
}

// taskStopper stops a container's task through containerd's API.
type taskStopper struct {
	client    *containerd.Client
	namespace string
}

func (s taskStopper) Stop(ctx context.Context, id, _ string) error {
	ctx = namespaces.WithNamespace(ctx, s.namespace)
	c, err := s.client.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return err
	}
	return task.Kill(ctx, syscall.SIGKILL)
}
