package watch

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// maxCandidates bounds the images judged for one rootfs: images that share
// every layer and differ only in their config.
const maxCandidates = 8

// judge decides on one container whose task started outside NRI's view.
// taskStarted is when containerd published the task start (zero at startup).
func (w *Watcher) judge(ctx context.Context, ns, id, why string, taskStarted time.Time) {
	start := time.Now()
	if ns == w.opts.CRINamespace && w.knownToNRI(ctx, ns, id) {
		return // NRI judges CRI containers at creation and at every synchronization
	}
	var v policy.Verdict
	s := policy.Subject{Container: id, OutsideCRI: true}
	c, err := w.rt.container(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
		return // removed since: nothing runs
	case err != nil:
		v = identityDeny(fmt.Sprintf("cannot read the container's record: %v", err))
	default:
		var rfs rootfs
		idx := w.index(ctx, ns)
		rfs, err = identify(ctx, w.rt, idx, c)
		if err != nil {
			v = identityDeny(err.Error())
			break
		}
		if ns == w.opts.CRINamespace && w.isSandbox(ctx, rfs) {
			return // the CRI's own pod sandbox: its image is the configured pause image
		}
		v, s = w.decide(ctx, idx, rfs, c.Image, s)
	}
	if w.opts.Observe != nil {
		w.opts.Observe("running", v, time.Since(start))
	}
	rec := audit.FromVerdict("running", s, v, time.Since(start))
	rec.Container, rec.ContainerID, rec.CtrdNamespace = id, id, ns
	rec.Reason = fmt.Sprintf("container created outside the CRI (containerd namespace %s), judged at %s: %s", ns, why, v.Reason)
	if v.Allowed() {
		w.opts.Audit.Write(rec)
		return
	}
	if w.opts.Stop {
		err := w.rt.kill(ctx, id)
		rec.MarkStopped(err)
		if err == nil && !taskStarted.IsZero() {
			// The window this path leaves open: the task ran this long.
			window := time.Since(taskStarted)
			rec.Reason += fmt.Sprintf(" %.1f ms after its task started", float64(window.Microseconds())/1000)
			w.opts.Log.Info("stopped an untrusted container after its task started", "containerd_namespace", ns,
				"container_id", id, "kill_after_start_ms", float64(window.Microseconds())/1000)
		}
	}
	w.opts.Audit.Write(rec)
}

// knownToNRI reports whether NRI told the plugin about the container. Until
// NRI synchronized, nothing is known: the watcher waits a bounded time rather
// than judge (and perhaps stop) a CRI container that NRI allowed under its
// pod's namespace, which the watcher cannot see.
func (w *Watcher) knownToNRI(ctx context.Context, ns, id string) bool {
	if w.opts.KnownToNRI == nil {
		return false
	}
	w.mu.Lock()
	if w.syncDeadline.IsZero() {
		w.syncDeadline = time.Now().Add(w.opts.SyncWait)
	}
	deadline := w.syncDeadline
	w.mu.Unlock()
	for {
		known, synced := w.opts.KnownToNRI(id)
		if synced {
			return known
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			w.dropped.Add(1)
			w.opts.Log.Warn("container in the CRI namespace not judged: NRI has not synchronized with the plugin yet",
				"containerd_namespace", ns, "container_id", id, "waited", w.opts.SyncWait.String())
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// isSandbox reports whether a container in the CRI namespace runs the CRI's
// sandbox image: NRI never reports sandboxes as containers.
func (w *Watcher) isSandbox(ctx context.Context, rfs rootfs) bool {
	for _, pause := range w.sandboxConfigs(ctx) {
		for _, c := range rfs.Configs {
			if c == pause {
				return true
			}
		}
	}
	return false
}

// decide judges the images whose rootfs the container runs, in its own
// containerd namespace. Images that share every layer run the same files, so
// one trusted candidate is enough; the record names the one that decided. A
// container outside the CRI has no Kubernetes namespace: only policies
// covering namespace "*" apply to it.
func (w *Watcher) decide(ctx context.Context, idx ChainIndex, rfs rootfs, claimed string, s policy.Subject) (policy.Verdict, policy.Subject) {
	// The record's Image field is the client's word: it names the container
	// in the record only when it is the image that runs.
	claimedConfig, claimedTarget := "", ""
	if claimed != "" {
		claimedConfig, claimedTarget, _ = w.rt.imageConfig(ctx, claimed)
	}
	configs := rfs.Configs
	if len(configs) > maxCandidates {
		configs = configs[:maxCandidates]
	}
	var v policy.Verdict
	var vs policy.Subject
	for i, cfg := range configs {
		cs := s
		cs.ConfigDigest = cfg
		if cfg == claimedConfig {
			// The record names the image that runs: what it points at is
			// the digest "pulled" for it (the audit record's digest when
			// nothing was signed).
			cs.ImageName, cs.PulledDigest = claimed, claimedTarget
		}
		digests, repos, err := w.resolve(ctx, idx, cfg)
		var cv policy.Verdict
		if err != nil {
			cv = identityDeny(fmt.Sprintf("cannot read image %s from containerd's content store: %v", cfg, err))
		} else {
			cs.ImageDigests, cs.Repositories = digests, repos
			cv = w.opts.Decider().Decide(ctx, cs)
		}
		if i == 0 || cv.Allowed() {
			v, vs = cv, cs
		}
		if cv.Allowed() {
			break
		}
	}
	if claimed != "" && vs.ImageName == "" {
		v.Reason += fmt.Sprintf(" (the container's record names image %q, which is not the image its root filesystem holds)", claimed)
	}
	return v, vs
}

func identityDeny(reason string) policy.Verdict {
	return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleImageIdentity, Reason: reason}
}

// resolver is the part of pkg/imagestore's index that finds a config's image
// digests; an index without it (unit tests' fakes) leaves that to the runtime.
type resolver interface {
	Resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error)
}

func (w *Watcher) resolve(ctx context.Context, idx ChainIndex, configDigest string) ([]string, map[string][]string, error) {
	if r, ok := idx.(resolver); ok {
		return r.Resolve(ctx, configDigest)
	}
	return w.rt.resolve(ctx, configDigest)
}
