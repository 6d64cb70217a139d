//go:build !nodaemon

package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/daemon"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
)

const defaultConfigPath = "/etc/nri-csig/config.yaml"

type runOptions struct {
	cfg       daemon.Config
	logFile   string
	auditSink string
}

func newRunCmd() *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node daemon: an NRI plugin that refuses untrusted containers",
		Long: `Run the node daemon. It registers with containerd's NRI and judges every container
the CRI creates, on the image digest the node will actually run (the config digest that
containerd reports, and the manifests in containerd's content store that carry it). A
container that is not trusted is refused in NRI's validation phase, which fails closed.
Every decision is one audit record (journald fields CSIG_DECISION, CSIG_NAMESPACE, ...):
  journalctl -t nri-csig CSIG_DECISION=deny

Requirements:
  - containerd >= 2.4 (older releases do not tell plugins which image a container runs;
    the daemon refuses to start on them and says so).
  - NRI enabled in containerd's config, and for fail-closed operation the plugin listed in
    the default validator, so that no container starts while the daemon is absent:
      [plugins.'io.containerd.nri.v1.nri'.default_validator]
        enable = true
        required_plugins = ['nri-csig']

It runs as an external plugin (dials --nri-socket, reconnects when containerd restarts)
or as a pre-installed plugin that containerd launches from its plugin_path
(e.g. /opt/nri/plugins/50-nri-csig); then the connection and identity come from
containerd, and logs go to /var/log/nri-csig.log unless --log-file says otherwise
(containerd discards a pre-installed plugin's output).

The node config is checked at start exactly as "nri-csig check-config" checks it. At boot
the daemon registers with NRI within 5 seconds whatever the bundle sources do: with the
last good bundle from the state directory, or failing closed (allow lists only) without
one, and it keeps reading the sources in the background.

SIGHUP reloads the node config, all of it or none: the bundle section (added, removed,
other sources, another signing key) applies at once, without waiting for a source; a
config the start would refuse, or one that changes stateDir or signatures (which need a
restart: "needs a restart: <field>"), is refused and the one in force stays.

Node config file (--config):
` + indent(nodeconfig.Example+nodeconfig.GuardExample),
		Example: `  # external plugin on a standard node
  nri-csig run --config /etc/nri-csig/config.yaml

  # a private containerd (tests, demos)
  nri-csig run --nri-socket /tmp/lab/nri.sock --containerd-address /tmp/lab/containerd.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.cfg.ConfigOptional = !cmd.Flags().Changed("config")
			return runDaemon(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.ConfigPath, "config", defaultConfigPath, "node config file (cluster name, allow lists); a missing default file means no allow lists")
	f.StringVar(&o.cfg.Connection.Socket, "nri-socket", "/var/run/nri/nri.sock", "NRI socket of containerd (external plugin)")
	f.StringVar(&o.cfg.Connection.Name, "plugin-name", "nri-csig", "plugin name registered with NRI; list it in the default validator's required_plugins")
	f.StringVar(&o.cfg.Connection.Index, "plugin-index", "50", "plugin index (two digits): the order among NRI plugins")
	f.StringVar(&o.cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd's gRPC socket, to read images from its content store")
	f.StringVar(&o.cfg.ContainerdNamespace, "containerd-namespace", "k8s.io", "containerd namespace the CRI uses")
	f.DurationVar(&o.cfg.DecisionTimeout, "decision-timeout", time.Second, "longest one decision may take before the container is refused; also capped at 3/4 of NRI's request timeout")
	f.StringVar(&o.cfg.MetricsAddress, "metrics-address", "127.0.0.1:9464", "serve Prometheus /metrics and /readyz (200 only while registered with NRI) here; empty turns it off")
	f.BoolVar(&o.cfg.DebugPprof, "debug-pprof", false, "also serve Go's runtime profiles (heap, goroutines, CPU) under /debug/pprof/ on the metrics address, for measuring the daemon; keep the metrics address on loopback when it is on")
	f.IntVar(&o.cfg.GCPercent, "gc-percent", 0, fmt.Sprintf("Go garbage collector target (GOGC: collect when the heap grew by this %% since the last collection); 0: GOGC from the environment if set, else %d", daemon.DefaultGCPercent))
	f.BoolVar(&o.cfg.StopUntrusted, "stop-untrusted", false, "stop running containers found untrusted when judged again (after a reconnection or a policy change); default: report them only")
	f.BoolVar(&o.cfg.WatchContainerd, "watch-containerd", true, "also judge containers created outside the CRI (ctr, nerdctl, containerd clients), which NRI never sees, when their tasks start; they have no Kubernetes namespace, so only policies covering namespace \"*\" apply to them")
	f.StringSliceVar(&o.cfg.SandboxImageConfigs, "sandbox-image-config", nil, "config digest (sha256:...) of the CRI's sandbox (pause) image, whose pod sandboxes the containerd watcher leaves alone (repeatable); default: the images the CRI pinned (label io.cri-containerd.pinned=pinned), which a sandbox image imported with ctr lacks")
	f.StringVar(&o.logFile, "log-file", "", "write logs (JSON lines) to this file instead of stderr")
	f.StringVar(&o.auditSink, "audit", "auto", "where the one-record-per-decision audit trail goes: journald (fields CSIG_DECISION, CSIG_NAMESPACE, ...), json (JSON lines with the logs), or auto (journald when its socket exists)")
	return cmd
}

func runDaemon(cmd *cobra.Command, o runOptions) error {
	log, logOut, closeLog, err := openLog(o.logFile)
	if err != nil {
		return err
	}
	defer closeLog()
	sink, err := audit.Open(o.auditSink, audit.NewJSON(logOut, "component", logComponent))
	if err != nil {
		return err
	}
	o.cfg.Log, o.cfg.Audit = log, sink
	return daemon.Run(cmd.Context(), o.cfg)
}

// logComponent is the "component" of every line of the daemon's log.
const logComponent = "nri-csig"

// openLog returns the daemon's logger (JSON lines, one per event) and the
// writer under it, for the audit records' JSON lines.
func openLog(path string) (*slog.Logger, *audit.LockedWriter, func(), error) {
	var w io.Writer = os.Stderr
	closer := func() {}
	if path == "" && plugin.PreInstalled() {
		// containerd discards a pre-installed plugin's output.
		path = "/var/log/nri-csig.log"
	}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening log file: %w", err)
		}
		w, closer = f, func() {
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "nri-csig: closing the log file %s: %v\n", path, err)
			}
		}
	}
	out := &audit.LockedWriter{W: w}
	return slog.New(slog.NewJSONHandler(out, nil)).With("component", logComponent), out, closer, nil
}
