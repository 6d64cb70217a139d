package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/internal/ctrdconn"
	"github.com/nri-csig/nri-csig/pkg/guard"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
)

// guardSource builds the node-integrity guard once per node config.
type guardSource struct {
	ctrdRoot string // containerd's root folder, as containerd reports it

	mu   sync.Mutex
	node *nodeconfig.Config // the config built is for
	in   *plugin.Integrity
}

// integrityInForce is the guard of the node config in force (d.node), for
// the plugin, which asks at every decision: a reloaded config takes effect at
// the next one.
func (d *daemon) integrityInForce() *plugin.Integrity {
	d.mu.Lock()
	node := d.node
	d.mu.Unlock()
	d.guard.mu.Lock()
	defer d.guard.mu.Unlock()
	if d.guard.in == nil || d.guard.node != node {
		d.guard.node, d.guard.in = node, d.integrity(node)
	}
	return d.guard.in
}

// integrity builds the node-integrity guard of a node config. What the daemon
// itself was told is protected too: the NRI socket and containerd address it
// connects to, its config file's folder, its state folder and its executable.
func (d *daemon) integrity(node *nodeconfig.Config) *plugin.Integrity {
	gc := node.Guard.Paths
	gc.Extra = slices.Clone(gc.Extra)
	gc.StateDir = node.StateDir
	extra := func(paths ...string) {
		for _, p := range paths {
			if filepath.IsAbs(p) && p != "/" {
				gc.Extra = append(gc.Extra, p)
			}
		}
	}
	if sock := d.cfg.Connection.Socket; gc.NRISocket == "" && filepath.IsAbs(sock) {
		gc.NRISocket = sock
	} else {
		extra(sock, filepath.Dir(sock))
	}
	if sock := d.cfg.ContainerdAddress; gc.ContainerdSocket == "" && filepath.IsAbs(sock) {
		gc.ContainerdSocket = sock
	} else {
		extra(sock, filepath.Dir(sock))
	}
	// containerd's root and state, unless the node config names them: what
	// containerd reports (its content store lives in <root>), and the
	// folder of its socket (<state>/containerd.sock in every standard layout).
	if gc.ContainerdRoot == "" {
		gc.ContainerdRoot = d.guard.ctrdRoot
	}
	if sock := d.cfg.ContainerdAddress; gc.ContainerdState == "" && filepath.Base(sock) == "containerd.sock" && filepath.IsAbs(sock) {
		gc.ContainerdState = filepath.Dir(sock)
	}
	if d.cfg.ConfigPath != "" {
		if abs, err := filepath.Abs(d.cfg.ConfigPath); err == nil {
			extra(filepath.Dir(abs))
		}
	}
	if exe, err := os.Executable(); err == nil {
		extra(exe)
	}
	return &plugin.Integrity{Guard: guard.New(gc, guard.HostResolver), RefuseMounts: node.Guard.RefuseMounts, RefuseDevices: node.Guard.RefuseDevices}
}

// containerdRoot asks containerd for its root folder: the parent of its
// content store's. Empty when it cannot tell (the guard then assumes
// /var/lib/containerd, or what the node config's guard.containerdRoot says).
func containerdRoot(ctx context.Context, client *ctrdconn.Conn) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := client.IntrospectionService().Plugins(ctx, "type==io.containerd.content.v1")
	if err != nil {
		return ""
	}
	for _, p := range resp.GetPlugins() {
		if root := p.GetExports()["root"]; filepath.IsAbs(root) {
			return filepath.Dir(root)
		}
	}
	return ""
}
