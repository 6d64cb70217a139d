package watch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/nri-csig/nri-csig/internal/ctrdconn"
	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Decider judges a subject (the daemon's current decision sources).
type Decider interface {
	Decide(ctx context.Context, s policy.Subject) policy.Verdict
}

// Options configure a Watcher.
type Options struct {
	// CRINamespace is the containerd namespace of the CRI (k8s.io): its
	// containers are NRI's business, except the ones NRI does not know.
	CRINamespace string
	// KnownToNRI reports whether NRI told the plugin about a container, and
	// whether NRI has synchronized yet (before, nothing is known).
	KnownToNRI func(id string) (known, synced bool)
	// SyncWait bounds how long a container in the CRI namespace waits for
	// NRI's first synchronization before it is left unjudged (default 10s).
	SyncWait time.Duration
	// Index finds images by rootfs chain ID in a containerd namespace (the
	// daemon's pkg/imagestore index of the CRI namespace). When it is nil or
	// returns nil for a namespace, the watcher keeps an imagestore index of
	// that namespace itself, built at its first container and kept from the
	// namespace's image events.
	Index func(containerdNamespace string) ChainIndex
	// SandboxConfigs are the config digests of the CRI's sandbox (pause)
	// image, whose containers in the CRI namespace are not judged. Empty: the
	// images the CRI pinned (its pinned_images, by default only the sandbox
	// image), read from the CRI namespace.
	SandboxConfigs []string
	// Decider returns the decision sources in force.
	Decider func() Decider
	Audit   audit.Sink
	Log     *slog.Logger
	// Stop kills untrusted containers' tasks instead of only reporting them.
	Stop bool
	// OnImage is called when an image record is created, updated or deleted.
	OnImage func(ctx context.Context, namespace, name string)
	// Observe is told of every verdict (metrics).
	Observe func(event string, v policy.Verdict, took time.Duration)
}

// Watcher follows containerd's events.
type Watcher struct {
	client *ctrdconn.Conn // nil in unit tests
	rt     runtime
	opts   Options

	mu      sync.Mutex
	indexes map[string]*imagestore.Index // by containerd namespace, when Options.Index gives none
	pinned  []string                     // cached pinned configs; nil: read again
	dropped atomic.Uint64
	// syncDeadline is how long containers wait for NRI's first
	// synchronization, shared so that a node where it never comes does not
	// hold up each container in turn.
	syncDeadline time.Time
}

// New returns a watcher on a containerd connection.
func New(client *ctrdconn.Conn, opts Options) *Watcher {
	w := newWatcher(clientRuntime{client}, opts)
	w.client = client
	return w
}

func newWatcher(rt runtime, opts Options) *Watcher {
	if opts.SyncWait <= 0 {
		opts.SyncWait = 10 * time.Second
	}
	return &Watcher{rt: rt, opts: opts, indexes: map[string]*imagestore.Index{}}
}

// Dropped counts what the watcher could not act on: events it could not
// decode and containers left unjudged. Each is also logged.
func (w *Watcher) Dropped() uint64 { return w.dropped.Load() }

// Run judges what already runs, then follows events until ctx ends,
// resubscribing when containerd restarts.
func (w *Watcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := w.follow(ctx); err != nil && ctx.Err() == nil {
			w.opts.Log.Warn("containerd event stream ended; resubscribing", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (w *Watcher) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errs := w.client.EventService().Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/images/create"`, `topic=="/images/update"`, `topic=="/images/delete"`)
	w.invalidate("") // image events may have been missed while unsubscribed
	// Subscribe first, then sweep, so that nothing starting in between is missed.
	if err := w.Sweep(ctx); err != nil {
		w.opts.Log.Warn("judging running containers outside the CRI failed", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case env := <-evs:
			w.handle(ctx, env)
		}
	}
}

// handle acts on one containerd event.
func (w *Watcher) handle(ctx context.Context, env *events.Envelope) {
	if env == nil || env.Event == nil {
		return
	}
	ev, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		// A task start we cannot read is a container nobody judges: say so.
		w.dropped.Add(1)
		w.opts.Log.Warn("cannot decode a containerd event; it is dropped", "topic", env.Topic,
			"containerd_namespace", env.Namespace, "error", err)
		return
	}
	nsCtx := namespaces.WithNamespace(ctx, env.Namespace)
	switch e := ev.(type) {
	case *apievents.TaskStart:
		w.judge(nsCtx, env.Namespace, e.ContainerID, "task start", env.Timestamp)
	case *apievents.ImageCreate:
		w.image(nsCtx, env.Namespace, e.Name)
	case *apievents.ImageUpdate:
		w.image(nsCtx, env.Namespace, e.Name)
	case *apievents.ImageDelete:
		w.image(nsCtx, env.Namespace, e.Name)
	}
}

func (w *Watcher) image(ctx context.Context, ns, name string) {
	w.invalidate(ns)
	w.mu.Lock()
	x := w.indexes[ns]
	w.mu.Unlock()
	if x != nil {
		uctx, cancel := context.WithTimeout(ctx, indexTimeout)
		if err := x.Update(uctx, name); err != nil {
			// The record is read again at the next event or rebuild; until
			// then a container on it is not identified (refused).
			w.opts.Log.Warn("cannot re-read an image record", "containerd_namespace", ns, "image", name, "error", err)
		}
		cancel()
	}
	if w.opts.OnImage != nil {
		w.opts.OnImage(ctx, ns, name)
	}
}

// indexTimeout bounds building or updating a namespace's image index.
const indexTimeout = 10 * time.Second

// invalidate forgets what was read from the image records of namespace ns
// ("": all namespaces, e.g. after the event stream was lost: the indexes are
// built again at their next use).
func (w *Watcher) invalidate(ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ns == "" || ns == w.opts.CRINamespace {
		w.pinned = nil // the sandbox image may have been (re)pulled
	}
	if ns == "" {
		w.indexes = map[string]*imagestore.Index{}
	}
}

// Sweep judges every running container outside the CRI, in every namespace.
func (w *Watcher) Sweep(ctx context.Context) error {
	nss, err := w.client.Namespaces(ctx)
	if err != nil {
		return fmt.Errorf("listing containerd namespaces: %w", err)
	}
	for _, ns := range nss {
		nsCtx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := w.client.ContainerService().List(nsCtx)
		if err != nil {
			return fmt.Errorf("listing containers in namespace %s: %w", ns, err)
		}
		for _, c := range ctrs {
			if _, err := w.client.LoadTask(nsCtx, c.ID); err != nil {
				if !errdefs.IsNotFound(err) {
					w.dropped.Add(1)
					w.opts.Log.Warn("cannot tell whether a container runs; it is not judged now", "containerd_namespace", ns,
						"container_id", c.ID, "error", err)
				}
				continue // no task: not running
			}
			w.judge(nsCtx, ns, c.ID, "startup", time.Time{})
		}
	}
	return nil
}

// index returns the image index of a containerd namespace. One the watcher
// keeps itself is built at its first use; when that fails, an unbuilt index
// is returned (it identifies nothing, so the container is refused) and the
// next container tries again.
func (w *Watcher) index(ctx context.Context, ns string) ChainIndex {
	if w.opts.Index != nil {
		if x := w.opts.Index(ns); x != nil {
			return x
		}
	}
	w.mu.Lock()
	x, ok := w.indexes[ns]
	w.mu.Unlock()
	if ok {
		return x
	}
	x = imagestore.New(w.client.ImageService(), imagestore.ContentAPI(w.client.GRPC()), ns, imagestore.WithLogger(w.opts.Log))
	bctx, cancel := context.WithTimeout(ctx, indexTimeout)
	defer cancel()
	if err := x.Build(bctx); err != nil {
		w.opts.Log.Warn("cannot index the images of a containerd namespace", "containerd_namespace", ns, "error", err)
		return x
	}
	w.mu.Lock()
	w.indexes[ns] = x
	w.mu.Unlock()
	return x
}

// sandboxConfigs are the config digests of the CRI's sandbox image.
func (w *Watcher) sandboxConfigs(ctx context.Context) []string {
	if len(w.opts.SandboxConfigs) > 0 {
		return w.opts.SandboxConfigs
	}
	w.mu.Lock()
	cached := w.pinned
	w.mu.Unlock()
	if cached != nil {
		return cached
	}
	got, err := w.rt.pinnedConfigs(ctx)
	if err != nil {
		w.opts.Log.Warn("cannot read the CRI's pinned (sandbox) images; sandboxes are judged like any container", "error", err)
		return nil
	}
	if got == nil {
		got = []string{}
	}
	w.mu.Lock()
	w.pinned = got
	w.mu.Unlock()
	return got
}
