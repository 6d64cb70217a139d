// Package plugin is the NRI glue of nri-csig: it turns containerd's NRI events
// into subjects, asks a Decider for a verdict, refuses untrusted containers and
// writes one audit record per decision. It holds no crypto and no policy logic.
//
// The refusal happens in ValidateContainerAdjustment, because that phase fails
// closed: when this plugin errs, times out or has died, containerd refuses the
// container, while an error or time-out in CreateContainer lets it through
// (NRI <= v0.12.3, every containerd release up to 2.4.2).
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Decider judges one container. It must not block: the time it may take is
// bounded by the plugin's deadline (see Options.DecisionTimeout).
type Decider interface {
	Decide(ctx context.Context, s policy.Subject) policy.Verdict
}

// ImageResolver returns the image digests in the node's content store whose
// config is configDigest.
type ImageResolver interface {
	ImageDigests(ctx context.Context, configDigest string) ([]string, error)
}

// Options tune the plugin.
type Options struct {
	// Audit receives one record per decision; nil means JSON lines on the log.
	Audit audit.Sink
	// DecisionTimeout bounds one decision. It is further capped at 3/4 of
	// NRI's request timeout, so the plugin answers with a refusal before NRI
	// gives up on it (a timed-out request is let through, and the plugin dropped).
	DecisionTimeout time.Duration
}

// Plugin implements the NRI handlers nri-csig needs.
type Plugin struct {
	decider atomic.Pointer[deciderBox]
	images  ImageResolver
	log     *slog.Logger
	opts    Options

	// requestTimeout is NRI's plugin_request_timeout, learnt at Configure.
	requestTimeout atomic.Int64
	// lastConfigureErr is why the runtime was refused, if it was.
	lastConfigureErr atomic.Pointer[error]
	stub             stub.Stub
}

type deciderBox struct{ Decider }

// New returns a plugin that decides with d, resolves images with images and
// writes its audit records and diagnostics to log.
func New(d Decider, images ImageResolver, log *slog.Logger, opts Options) *Plugin {
	if opts.DecisionTimeout <= 0 {
		opts.DecisionTimeout = time.Second
	}
	if opts.Audit == nil {
		opts.Audit = audit.JSON{Log: log}
	}
	p := &Plugin{images: images, log: log, opts: opts}
	p.SetDecider(d)
	return p
}

// SetDecider swaps the decider, e.g. after the configuration was reloaded.
func (p *Plugin) SetDecider(d Decider) { p.decider.Store(&deciderBox{d}) }

// ErrUnsupportedRuntime is returned (wrapped) by Configure when the runtime
// cannot tell the plugin which image a container runs.
var ErrUnsupportedRuntime = errors.New("unsupported runtime")

// Configure checks the runtime and subscribes to the events the plugin handles.
func (p *Plugin) Configure(_ context.Context, _, runtime, version string) (api.EventMask, error) {
	if err := checkRuntime(runtime, version); err != nil {
		p.log.Error("refusing to run on this runtime", "runtime", runtime, "version", version, "error", err)
		p.lastConfigureErr.Store(&err)
		return 0, err
	}
	if s := p.currentStub(); s != nil {
		p.requestTimeout.Store(int64(s.RequestTimeout()))
	}
	p.log.Info("connected to runtime", "runtime", runtime, "version", version)
	return api.MustParseEventMask("ValidateContainerAdjustment"), nil
}

// checkRuntime requires containerd >= 2.4: older releases do not report the
// container's image (NRI Container.image), and the only other source, the
// io.kubernetes.cri.image-name annotation, is chosen by whoever calls the CRI.
func checkRuntime(runtime, version string) error {
	if runtime != "containerd" {
		return fmt.Errorf("%w: nri-csig needs containerd >= 2.4, the runtime is %s %s", ErrUnsupportedRuntime, runtime, version)
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(version, "v"), "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("%w: cannot read containerd version %q; nri-csig needs containerd >= 2.4", ErrUnsupportedRuntime, version)
	}
	if major < 2 || (major == 2 && minor < 4) {
		return fmt.Errorf("%w: containerd %s does not report which image a container runs (NRI Container.image, added in containerd 2.4); upgrade containerd to 2.4 or later", ErrUnsupportedRuntime, version)
	}
	return nil
}

func (p *Plugin) configureErr() error {
	if e := p.lastConfigureErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Synchronize is called at every (re)connection with what already runs.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.log.Info("synchronized with runtime", "pods", len(pods), "containers", len(ctrs))
	return nil, nil
}

// Shutdown is called when the runtime shuts down.
func (p *Plugin) Shutdown(context.Context) { p.log.Info("runtime is shutting down") }

// ValidateContainerAdjustment refuses the container (by returning an error,
// which the stub turns into a rejection) unless its image is trusted.
func (p *Plugin) ValidateContainerAdjustment(ctx context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	v, s := p.judge(ctx, req.GetPod(), req.GetContainer())
	if v.Allowed() {
		return nil
	}
	return errors.New(refusal(s, v))
}

// judge decides on one container within the plugin's own deadline.
func (p *Plugin) judge(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (policy.Verdict, policy.Subject) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.budget())
	defer cancel()

	s := policy.Subject{
		Namespace: pod.GetNamespace(),
		Pod:       pod.GetName(),
		Container: ctr.GetName(),
	}
	// Names in the annotation are the CRI caller's word (user_specified_image):
	// used in messages when the runtime gives none, never in decisions.
	s.ImageName = ctr.GetAnnotations()["io.kubernetes.cri.image-name"]

	type result struct {
		v policy.Verdict
		s policy.Subject
	}
	done := make(chan result, 1)
	go func() {
		v, s := p.decide(ctx, s, ctr)
		done <- result{v, s}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r = result{s: s, v: policy.Verdict{Decision: policy.Deny, Rule: "deadline",
			Reason: fmt.Sprintf("the decision did not finish within %s; refusing rather than letting NRI time out (kubelet retries)", p.budget())}}
	}
	p.audit(r.s, r.v, time.Since(start))
	return r.v, r.s
}

func (p *Plugin) decide(ctx context.Context, s policy.Subject, ctr *api.Container) (policy.Verdict, policy.Subject) {
	img := ctr.GetImage()
	if img == nil || img.GetConfigDigest() == "" {
		return policy.Verdict{Decision: policy.Deny, Rule: "image-identity",
			Reason: "the runtime did not report which image this container runs (NRI Container.image needs containerd >= 2.4)"}, s
	}
	if img.GetName() != "" {
		s.ImageName = img.GetName()
	}
	s.ConfigDigest = img.GetConfigDigest()
	digests, err := p.images.ImageDigests(ctx, s.ConfigDigest)
	if err != nil {
		return policy.Verdict{Decision: policy.Deny, Rule: "image-identity", Digest: img.GetDigest(),
			Reason: fmt.Sprintf("cannot read the image from containerd's content store: %v", err)}, s
	}
	s.ImageDigests = digests
	return p.decider.Load().Decide(ctx, s), s
}

// budget is the time one decision may take.
func (p *Plugin) budget() time.Duration {
	b := p.opts.DecisionTimeout
	if rt := time.Duration(p.requestTimeout.Load()); rt > 0 && rt*3/4 < b {
		b = rt * 3 / 4
	}
	return b
}

// refusal is the message containerd hands back to the CRI caller: crictl
// prints it and kubelet puts it in the pod's events.
func refusal(s policy.Subject, v policy.Verdict) string {
	digest := v.Digest
	if digest == "" {
		digest = "unknown"
	}
	return fmt.Sprintf("nri-csig: refused container %q in pod %s/%s: image %s (digest %s): %s",
		s.Container, s.Namespace, s.Pod, orUnknown(s.ImageName), digest, v.Reason)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// audit writes the one record of a decision.
func (p *Plugin) audit(s policy.Subject, v policy.Verdict, took time.Duration) {
	p.opts.Audit.Write(audit.Record{
		Event:        "create",
		Decision:     string(v.Decision),
		Rule:         v.Rule,
		Namespace:    s.Namespace,
		Pod:          s.Pod,
		Container:    s.Container,
		Image:        s.ImageName,
		Digest:       v.Digest,
		ConfigDigest: s.ConfigDigest,
		Reason:       v.Reason,
		DurationMS:   float64(took.Microseconds()) / 1000,
	})
}
