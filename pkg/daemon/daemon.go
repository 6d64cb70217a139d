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
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/nri-csig/nri-csig/internal/version"
	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
	"github.com/nri-csig/nri-csig/pkg/policy"
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
	cfg     Config
	log     *slog.Logger
	audit   audit.Sink
	metrics *metrics
	plugin  *plugin.Plugin

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

	opts := plugin.Options{DecisionTimeout: cfg.DecisionTimeout, Audit: cfg.Audit, Observe: d.observe}
	if cfg.StopUntrusted {
		opts.Stopper = taskStopper{client: client, namespace: cfg.ContainerdNamespace}
	}
	d.plugin = plugin.New(d.decider(node), imagestore.New(client.ImageService(), client.ContentStore(), cfg.ContainerdNamespace), cfg.Log, opts)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

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

// decider builds the decision sources of a node config.
func (d *daemon) decider(node *nodeconfig.Config) plugin.Decider {
	return &policy.Decider{Allowlists: node.Allowlists}
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
	d.plugin.SetDecider(d.decider(node))
	d.metrics.reloads.WithLabelValues("accepted").Inc()
	d.metrics.reloadOK.Set(1)
	d.audit.Write(audit.Record{Event: "reload", Decision: "accepted", Reason: why})
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
