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
	mu       sync.Mutex
	ctrdRoot string // containerd's root folder, as containerd reports it; "" until learned
	// learning is closed once decisions no longer wait for ctrdRoot (learnRoot);
	// nil: no learner runs.
	learning chan struct{}
	wait     time.Duration      // how long a decision waits for the learner
	node     *nodeconfig.Config // the config built is for
	in       *plugin.Integrity
}

// integrityInForce is the guard of the node config in force (d.node), for
// the plugin, which asks at every decision: a reloaded config takes effect at
// the next one.
func (d *daemon) integrityInForce() *plugin.Integrity {
	d.mu.Lock()
	node := d.node
	d.mu.Unlock()
	if node.Guard.Paths.ContainerdRoot == "" {
		d.awaitRoot()
	}
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

// rootLearning is how the daemon learns containerd's root (learnRoot).
type rootLearning struct {
	first, max time.Duration // between attempts: first, doubling up to max
	attempt    time.Duration // the deadline of one attempt
	// warnAfter: a warning once the root is still unknown, and decisions
	// no longer wait for it.
	warnAfter time.Duration
	// wait bounds how long a decision waits for the root (well inside the
	// decision deadline).
	wait time.Duration
}

var defaultRootLearning = rootLearning{first: 50 * time.Millisecond, max: time.Second, attempt: 2 * time.Second, warnAfter: 10 * time.Second, wait: 300 * time.Millisecond}

// startRootLearner learns containerd's root in the background, once, when
// node does not name it (guard.containerdRoot). It does not block: in the
// pre-installed mode containerd launches the daemon before its gRPC socket
// serves, and NRI gives the daemon 5 s to register.
func (d *daemon) startRootLearner(ctx context.Context, node *nodeconfig.Config) {
	d.startLearner(ctx, node, askRoot(d.cfg.ContainerdAddress), defaultRootLearning)
}

// startLearner is startRootLearner asking with ask, timed by lr (tests).
func (d *daemon) startLearner(ctx context.Context, node *nodeconfig.Config, ask func(context.Context) (string, error), lr rootLearning) {
	if node.Guard.Paths.ContainerdRoot != "" {
		return
	}
	d.guard.mu.Lock()
	defer d.guard.mu.Unlock()
	if d.guard.learning != nil || d.guard.ctrdRoot != "" {
		return
	}
	d.guard.learning, d.guard.wait = make(chan struct{}), lr.wait
	go d.learnRoot(ctx, ask, lr, d.guard.learning)
}

// learnRoot asks containerd for its root until it answers or ctx ends, then
// puts it in force: the guard is built again at the next decision. settled
// is closed when decisions need not wait any more.
func (d *daemon) learnRoot(ctx context.Context, ask func(context.Context) (string, error), lr rootLearning, settled chan struct{}) {
	start := time.Now()
	settle := sync.OnceFunc(func() { close(settled) })
	defer settle()
	delay, warned := lr.first, false
	for attempts := 1; ; attempts++ {
		actx, cancel := context.WithTimeout(ctx, lr.attempt)
		root, err := ask(actx)
		cancel()
		if err == nil {
			if root == "" {
				d.log.Warn("containerd reports no content store root; the node-integrity guard assumes " + guard.DefaultContainerdRoot + ": set guard.containerdRoot in the node config if containerd's root is elsewhere")
				return
			}
			d.guard.mu.Lock()
			d.guard.ctrdRoot, d.guard.in = root, nil
			d.guard.mu.Unlock()
			d.log.Info("containerd root learned", "root", root, "took", time.Since(start).Round(time.Millisecond).String(), "attempts", attempts)
			return
		}
		if waited := time.Since(start); !warned && waited >= lr.warnAfter && ctx.Err() == nil {
			d.log.Warn("containerd's root is still unknown; until containerd answers, the node-integrity guard assumes "+guard.DefaultContainerdRoot+
				": a root elsewhere is not protected and the CRI's own files under it are not recognised (containers may be refused); set guard.containerdRoot in the node config",
				"waited", waited.Round(time.Second).String(), "containerd", d.cfg.ContainerdAddress, "error", err)
			warned = true
			settle()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, lr.max)
	}
}

// awaitRoot waits, a bounded time (rootLearning.wait), while the root is being
// learned. containerd serves the CRI on the gRPC server that answers the
// learner, so a container can only be created once it answers, and retrying
// every 50 ms the learner nearly always has the root first; this closes the
// window that remains. Then the guard falls back to the defaults.
func (d *daemon) awaitRoot() {
	d.guard.mu.Lock()
	root, settled, wait := d.guard.ctrdRoot, d.guard.learning, d.guard.wait
	d.guard.mu.Unlock()
	if root != "" || settled == nil {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-settled:
	case <-t.C:
	}
}

// askRoot asks containerd at address for its root over a connection of its
// own (learnRoot bounds each attempt): the daemon's shared one backs off for
// up to 10 s after a refused dial (a socket a crashed containerd left
// behind), so retrying on it would see containerd only seconds after it
// serves.
func askRoot(address string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		client, err := ctrdconn.Dial(address, "")
		if err != nil {
			return "", err
		}
		defer client.Close()
		return containerdRoot(ctx, client)
	}
}

// containerdRoot asks containerd for its root folder: the parent of its
// content store's; empty when containerd tells none.
func containerdRoot(ctx context.Context, client *ctrdconn.Conn) (string, error) {
	resp, err := client.IntrospectionService().Plugins(ctx, "type==io.containerd.content.v1")
	if err != nil {
		return "", err
	}
	for _, p := range resp.GetPlugins() {
		if root := p.GetExports()["root"]; filepath.IsAbs(root) {
			return filepath.Dir(root), nil
		}
	}
	return "", nil
}
