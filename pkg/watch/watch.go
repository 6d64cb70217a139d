// Package watch covers what NRI never sees: containers created through
// containerd's own API (ctr, nerdctl, any containerd client, in any containerd
// namespace) never reach NRI plugins. The watcher follows containerd's task
// events, judges every such container when its task starts (and all running
// ones at startup), reports the untrusted ones and, when configured, stops
// them. It also tells the daemon when images land, so their signatures can be
// verified before any container asks.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

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
	client *containerd.Client
	opts   Options
}

// New returns a watcher on client.
func New(client *containerd.Client, opts Options) *Watcher {
	return &Watcher{client: client, opts: opts}
}

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
	events, errs := w.client.EventService().Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/images/create"`, `topic=="/images/update"`, `topic=="/images/delete"`)
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
		case env := <-events:
			if env == nil || env.Event == nil {
				continue
			}
			ev, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			nsCtx := namespaces.WithNamespace(ctx, env.Namespace)
			switch e := ev.(type) {
			case *apievents.TaskStart:
				w.judge(nsCtx, env.Namespace, e.ContainerID, "task start")
			case *apievents.ImageCreate:
				w.image(nsCtx, env.Namespace, e.Name)
			case *apievents.ImageUpdate:
				w.image(nsCtx, env.Namespace, e.Name)
			case *apievents.ImageDelete:
				w.image(nsCtx, env.Namespace, e.Name)
			}
		}
	}
}

func (w *Watcher) image(ctx context.Context, ns, name string) {
	if w.opts.OnImage != nil {
		w.opts.OnImage(ctx, ns, name)
	}
}

// Sweep judges every running container outside the CRI, in every namespace.
func (w *Watcher) Sweep(ctx context.Context) error {
	nss, err := w.client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("listing containerd namespaces: %w", err)
	}
	for _, ns := range nss {
		nsCtx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := w.client.Containers(nsCtx)
		if err != nil {
			return fmt.Errorf("listing containers in namespace %s: %w", ns, err)
		}
		for _, c := range ctrs {
			if _, err := c.Task(nsCtx, nil); err != nil {
				continue // no task: not running
			}
			w.judge(nsCtx, ns, c.ID(), "startup")
		}
	}
	return nil
}

// CRI labels: the CRI marks its containers and sandboxes this way.
const (
	labelCRIKind = "io.cri-containerd.kind"
)

// judge decides on one container whose task started outside NRI's view.
func (w *Watcher) judge(ctx context.Context, ns, id, why string) {
	start := time.Now()
	c, err := w.client.LoadContainer(ctx, id)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			w.opts.Log.Warn("cannot load container to judge it", "containerd_namespace", ns, "container_id", id, "error", err)
		}
		return
	}
	info, err := c.Info(ctx)
	if err != nil {
		return
	}
	if ns == w.opts.CRINamespace {
		switch info.Labels[labelCRIKind] {
		case "sandbox":
			return // pod sandboxes (pause) run no workload
		case "container":
			// NRI judges CRI containers at creation and at every
			// synchronization; one NRI never told about was made another way.
			known, synced := w.opts.KnownToNRI(id)
			if known || !synced {
				return
			}
		}
	}
	s := policy.Subject{Container: id, ImageName: info.Image, OutsideCRI: true}
	v, s := w.decide(ctx, ns, info.Image, s)
	if w.opts.Observe != nil {
		w.opts.Observe("running", v, time.Since(start))
	}
	rec := audit.FromVerdict("running", s, v, time.Since(start))
	rec.ContainerID, rec.CtrdNamespace = id, ns
	rec.Reason = fmt.Sprintf("container created outside the CRI (containerd namespace %s), judged at %s: %s", ns, why, v.Reason)
	if v.Allowed() {
		w.opts.Audit.Write(rec)
		return
	}
	if w.opts.Stop {
		rec.MarkStopped(stopTask(ctx, c))
	}
	w.opts.Audit.Write(rec)
}

// decide resolves the container's image in its own containerd namespace and
// asks the decider. A container outside the CRI has no Kubernetes namespace:
// only policies covering namespace "*" apply to it.
func (w *Watcher) decide(ctx context.Context, ns, imageName string, s policy.Subject) (policy.Verdict, policy.Subject) {
	deny := func(reason string) (policy.Verdict, policy.Subject) {
		return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleImageIdentity, Digest: s.PulledDigest, Reason: reason}, s
	}
	if imageName == "" {
		return deny("the container names no image; its content cannot be judged")
	}
	img, err := w.client.GetImage(ctx, imageName)
	if err != nil {
		return deny(fmt.Sprintf("image %s is not in containerd's image store: %v", imageName, err))
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return deny(fmt.Sprintf("cannot read the config of image %s: %v", imageName, err))
	}
	s.ConfigDigest = cfg.Digest.String()
	s.PulledDigest = img.Target().Digest.String()
	digests, repos, err := imagestore.New(w.client.ImageService(), w.client.ContentStore(), ns).Resolve(ctx, s.ConfigDigest)
	if err != nil {
		return deny(fmt.Sprintf("cannot read the image from containerd's content store: %v", err))
	}
	s.ImageDigests, s.Repositories = digests, repos
	return w.opts.Decider().Decide(ctx, s), s
}

func stopTask(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return nil
}
