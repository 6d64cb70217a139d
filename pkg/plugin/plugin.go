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
	"sync"
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
// config is configDigest, and the repositories each was pulled from.
type ImageResolver interface {
	Resolve(ctx context.Context, configDigest string) ([]string, map[string][]string, error)
}

// NowDecider is a Decider that can often decide at once: DecideNow decides
// on the caller's goroutine, and must return at once, with ok false when
// deciding would wait on anything (the plugin then asks Decide, bounded by
// its deadline). Most containers are decided this way; the goroutine and the
// timer that bound Decide cost most of the plugin's CPU per container.
type NowDecider interface {
	DecideNow(s policy.Subject) (v policy.Verdict, ok bool)
}

// NowResolver is an ImageResolver that can often resolve at once, on the
// same terms as NowDecider.
type NowResolver interface {
	ResolveNow(configDigest string) (digests []string, repos map[string][]string, ok bool)
}

// Options tune the plugin.
type Options struct {
	// Audit receives one record per decision; nil means lines on the log
	// (audit.Log).
	Audit audit.Sink
	// DecisionTimeout bounds one decision. It is further capped at 3/4 of
	// NRI's request timeout, so the plugin answers with a refusal before NRI
	// gives up on it (a timed-out request is let through, and the plugin dropped).
	DecisionTimeout time.Duration
	// Stopper, when set, stops running containers found untrusted when they
	// are judged again (at every (re)connection and on Rejudge).
	Stopper Stopper
	// Observe, when set, is told of every decision (for metrics).
	Observe func(event string, v policy.Verdict, took time.Duration)
	// Rejudge, when set, is asked to judge the running containers again
	// after Synchronize (the daemon's one re-judging loop); nil: the plugin
	// does it in a goroutine of its own.
	Rejudge func(why string)
	// Integrity returns the node-integrity guard in force (guard.go); the
	// plugin asks at every decision. nil: no guard.
	Integrity func() *Integrity
}

// Stopper stops a running container, e.g. through containerd's task API:
// NRI's own eviction is not implemented by containerd (see NRI-FACTS.md).
type Stopper interface {
	Stop(ctx context.Context, containerID, reason string) error
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
	stubMu           sync.Mutex // guards stub: reconnects replace it
	stub             stub.Stub

	// containers are the CRI containers NRI told us about, to judge again
	// when the rules change; verdicts made at CreateContainer wait here for
	// the validation phase.
	mu         sync.Mutex
	containers map[string]tracked

	// ready is true while the plugin is registered with NRI.
	ready  atomic.Bool
	synced atomic.Bool
	// background runs work that must not hold up an NRI request.
	background func(func())

	// integrity is the node-integrity guard in force (guard.go).
	integrity atomic.Pointer[func() *Integrity]
}

type tracked struct {
	pod     *api.PodSandbox
	ctr     *api.Container
	verdict *policy.Verdict // set between CreateContainer and validation
	subject policy.Subject
	took    time.Duration // what deciding the early verdict took
}

type deciderBox struct{ Decider }

// New returns a plugin that decides with d, resolves images with images and
// writes its audit records and diagnostics to log.
func New(d Decider, images ImageResolver, log *slog.Logger, opts Options) *Plugin {
	if opts.DecisionTimeout <= 0 {
		opts.DecisionTimeout = time.Second
	}
	if opts.Audit == nil {
		opts.Audit = audit.Log{Log: log}
	}
	p := &Plugin{images: images, log: log, opts: opts, containers: map[string]tracked{},
		background: func(f func()) { go f() }}
	p.SetDecider(d)
	p.setIntegritySource(opts.Integrity)
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
	return api.MustParseEventMask("CreateContainer", "StartContainer", "RemoveContainer", "ValidateContainerAdjustment"), nil
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
// Those containers are judged again in the background (Synchronize must answer
// within NRI's deadline): a container that slipped through while the plugin
// was away is reported, and stopped when a Stopper is configured.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	byID := map[string]*api.PodSandbox{}
	for _, pod := range pods {
		byID[pod.GetId()] = pod
	}
	p.mu.Lock()
	p.containers = map[string]tracked{}
	for _, c := range ctrs {
		p.containers[c.GetId()] = tracked{pod: byID[c.GetPodSandboxId()], ctr: c}
	}
	p.mu.Unlock()
	p.ready.Store(true)
	p.synced.Store(true)
	p.log.Info("synchronized with runtime", "pods", len(pods), "containers", len(ctrs))
	if p.opts.Rejudge != nil {
		p.opts.Rejudge("synchronize")
	} else {
		p.background(func() { p.Rejudge(context.Background(), "synchronize") })
	}
	return nil, nil
}

// Known reports whether NRI told the plugin about a container, and whether it
// has synchronized with NRI at least once (before that, nothing is known).
func (p *Plugin) Known(id string) (known, synced bool) {
	p.mu.Lock()
	_, known = p.containers[id]
	p.mu.Unlock()
	return known, p.synced.Load()
}

// CurrentDecider returns the decider in force.
func (p *Plugin) CurrentDecider() Decider { return p.decider.Load().Decider }

// Ready reports whether the plugin is registered with NRI now.
func (p *Plugin) Ready() bool { return p.ready.Load() }

// Rejudge judges every known running container again, e.g. after the policy
// bundle changed, and reports (and optionally stops) the untrusted ones.
// It returns how many were found untrusted.
func (p *Plugin) Rejudge(ctx context.Context, why string) int {
	p.mu.Lock()
	list := make([]tracked, 0, len(p.containers))
	for _, t := range p.containers {
		if t.verdict == nil { // not yet past validation
			list = append(list, t)
		}
	}
	p.mu.Unlock()
	bad := 0
	for _, t := range list {
		st := t.ctr.GetState()
		if st != api.ContainerState_CONTAINER_RUNNING && st != api.ContainerState_CONTAINER_CREATED && st != api.ContainerState_CONTAINER_UNKNOWN {
			continue
		}
		start := time.Now()
		v, s := p.decideWithin(ctx, t.pod, t.ctr)
		if p.opts.Observe != nil {
			p.opts.Observe("running", v, time.Since(start))
		}
		p.auditViolations("running", s, v, t.ctr.GetId())
		if v.Allowed() {
			continue
		}
		bad++
		rec := audit.FromVerdict("running", s, v, time.Since(start))
		rec.ContainerID = t.ctr.GetId()
		rec.Reason = fmt.Sprintf("running container is not trusted (judged again at %s): %s", why, v.Reason)
		if p.opts.Stopper != nil {
			rec.MarkStopped(p.opts.Stopper.Stop(ctx, t.ctr.GetId(), v.Reason))
		}
		p.opts.Audit.Write(rec)
	}
	return bad
}

// CreateContainer decides early so that a trusted container can carry its
// verdict as annotations ("Trusted Image", the witnesses). It never refuses:
// a failure in this phase lets the container through in containerd <= 2.4
// (fail-open), so the refusal is left to the validation phase.
func (p *Plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	start := time.Now()
	v, s := p.decideWithin(ctx, pod, ctr)
	p.mu.Lock()
	p.containers[ctr.GetId()] = tracked{pod: pod, ctr: ctr, verdict: &v, subject: s, took: time.Since(start)}
	p.mu.Unlock()
	if p.opts.Observe != nil {
		p.opts.Observe("create", v, time.Since(start))
	}
	if !v.Allowed() {
		return nil, nil, nil
	}
	adj := &api.ContainerAdjustment{}
	for k, val := range Annotations(v) {
		adj.AddAnnotation(k, val)
	}
	return adj, nil, nil
}

// Annotation keys set on allowed containers ("crictl inspect" shows them).
const (
	AnnotationTrusted   = "nri-csig.io/trusted-image"
	AnnotationVerdict   = "nri-csig.io/verdict"
	AnnotationWitnesses = "nri-csig.io/witnesses"
	AnnotationDigest    = "nri-csig.io/image-digest"
)

// Annotations renders an allowing verdict for the container's annotations.
func Annotations(v policy.Verdict) map[string]string {
	a := map[string]string{
		AnnotationTrusted: fmt.Sprint(v.Trusted),
		AnnotationVerdict: string(v.Decision) + " by " + v.RuleName(),
	}
	if len(v.Witnesses) > 0 {
		a[AnnotationWitnesses] = strings.Join(v.Witnesses, ",")
	}
	if v.Digest != "" {
		a[AnnotationDigest] = v.Digest
	}
	return a
}

// RemoveContainer forgets a removed container.
func (p *Plugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, ctr *api.Container) error {
	p.mu.Lock()
	delete(p.containers, ctr.GetId())
	p.mu.Unlock()
	return nil
}

// StartContainer judges the container again just before its process starts,
// so that a container created while its image was trusted does not start
// after a revocation. An error here fails the CRI StartContainer in
// containerd 2.4.2 (internal/cri/server/container_start.go returns "NRI
// container start failed" before task.Start, and deletes the created task).
// As in every phase but validation, a plugin that times out or has gone is
// skipped (NRI <= v0.12.3): the decision answers within its own deadline, and
// when the plugin was away Synchronize judges again what started meanwhile.
// Only refusals are recorded: an allowed start repeats the creation's verdict.
func (p *Plugin) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	start := time.Now()
	v, s := p.decideWithin(ctx, pod, ctr)
	if p.opts.Observe != nil {
		p.opts.Observe("start", v, time.Since(start))
	}
	if v.Allowed() {
		return nil
	}
	rec := audit.FromVerdict("start", s, v, time.Since(start))
	rec.ContainerID = ctr.GetId()
	rec.Reason = "container may not start, its image is no longer trusted: " + v.Reason
	p.opts.Audit.Write(rec)
	return errors.New(refusal(s, v))
}

// Shutdown is called when the runtime shuts down.
func (p *Plugin) Shutdown(context.Context) { p.log.Info("runtime is shutting down") }

// ValidateContainerAdjustment refuses the container (by returning an error,
// which the stub turns into a rejection) unless its image is trusted. It
// reuses the verdict made at CreateContainer, or decides now.
func (p *Plugin) ValidateContainerAdjustment(ctx context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	start := time.Now()
	ctr := req.GetContainer()
	p.mu.Lock()
	t, ok := p.containers[ctr.GetId()]
	early := t.verdict
	if ok && early != nil {
		t.verdict = nil // from now on it is a created container, judged again on changes
		p.containers[ctr.GetId()] = t
	}
	p.mu.Unlock()
	var v policy.Verdict
	var s policy.Subject
	if early != nil && ctr.GetId() != "" {
		v, s = *early, t.subject
		start = start.Add(-t.took) // the record counts the whole decision
	} else {
		v, s = p.decideWithin(ctx, req.GetPod(), ctr)
		p.mu.Lock()
		p.containers[ctr.GetId()] = tracked{pod: req.GetPod(), ctr: ctr}
		p.mu.Unlock()
	}
	// What other NRI plugins changed (guard.go): recorded, judged by the
	// guard, refused when the node config says so.
	if v.Allowed() || v.Kind == policy.RuleNodeIntegrity {
		v = p.checkAdjustment(req, s, v)
	}
	if p.opts.Observe != nil {
		p.opts.Observe("validate", v, time.Since(start))
	}
	rec := audit.FromVerdict("create", s, v, time.Since(start))
	rec.ContainerID = ctr.GetId()
	p.opts.Audit.Write(rec)
	p.auditViolations("create", s, v, ctr.GetId())
	if v.Allowed() {
		return nil
	}
	p.mu.Lock()
	delete(p.containers, ctr.GetId())
	p.mu.Unlock()
	return errors.New(refusal(s, v))
}

// decideWithin decides on one container within the plugin's own deadline.
// Most decisions are made at once (decideNow); the others run on a goroutine
// of their own, which the plugin stops waiting for at the deadline.
func (p *Plugin) decideWithin(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (policy.Verdict, policy.Subject) {
	s := policy.Subject{
		Namespace: pod.GetNamespace(),
		Pod:       pod.GetName(),
		Container: ctr.GetName(),
		// What containerd pulled for the reference: the audit trail's digest
		// when no signature decides.
		PulledDigest: ctr.GetImage().GetDigest(),
	}
	// Names in the annotation are the CRI caller's word (user_specified_image):
	// used in messages when the runtime gives none, never in decisions.
	s.ImageName = ctr.GetAnnotations()["io.kubernetes.cri.image-name"]

	// Node integrity first (guard.go, pkg/guard): a container that would reach
	// NRI, containerd or nri-csig itself is refused whatever its image.
	if v, refused := p.checkIntegrity(pod, ctr, &s); refused {
		return v, s
	}
	if v, s, ok := p.decideNow(s, ctr); ok {
		return v, s
	}

	ctx, cancel := context.WithTimeout(ctx, p.budget())
	defer cancel()

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
		r = result{s: s, v: policy.Verdict{Decision: policy.Deny, Kind: policy.RuleDeadline, Digest: s.PulledDigest,
			Reason: fmt.Sprintf("the decision did not finish within %s; refusing rather than letting NRI time out (kubelet retries)", p.budget())}}
	}
	return r.v, r.s
}

// decideNow is the decision without waiting (NowDecider, NowResolver), when
// the decider and the resolver offer it and both can answer at once.
func (p *Plugin) decideNow(s policy.Subject, ctr *api.Container) (policy.Verdict, policy.Subject, bool) {
	d, ok := p.decider.Load().Decider.(NowDecider)
	r, ok2 := p.images.(NowResolver)
	if !ok || !ok2 {
		return policy.Verdict{}, s, false
	}
	if v, refused := imageOf(&s, ctr); refused {
		return v, s, true
	}
	digests, repos, ok := r.ResolveNow(s.ConfigDigest)
	if !ok {
		return policy.Verdict{}, s, false
	}
	s.ImageDigests, s.Repositories = digests, repos
	v, ok := d.DecideNow(s)
	return v, s, ok
}

// imageOf fills in the subject's image from what the runtime reports, or
// refuses a container whose image the runtime does not report.
func imageOf(s *policy.Subject, ctr *api.Container) (policy.Verdict, bool) {
	img := ctr.GetImage()
	if img == nil || img.GetConfigDigest() == "" {
		return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleImageIdentity,
			Reason: "the runtime did not report which image this container runs (NRI Container.image needs containerd >= 2.4)"}, true
	}
	if img.GetName() != "" {
		s.ImageName = img.GetName()
	}
	s.ConfigDigest = img.GetConfigDigest()
	return policy.Verdict{}, false
}

func (p *Plugin) decide(ctx context.Context, s policy.Subject, ctr *api.Container) (policy.Verdict, policy.Subject) {
	if v, refused := imageOf(&s, ctr); refused {
		return v, s
	}
	digests, repos, err := p.images.Resolve(ctx, s.ConfigDigest)
	if err != nil {
		// An allow-list entry by config digest still decides: it needs no manifest.
		if v := p.decider.Load().Decide(ctx, s); v.Allowed() && v.Kind == policy.RuleAllowlist {
			return v, s
		}
		return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleImageIdentity, Digest: s.PulledDigest,
			Reason: fmt.Sprintf("cannot read the image from containerd's content store: %v", err)}, s
	}
	s.ImageDigests, s.Repositories = digests, repos
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

// auditViolations records each failing audit-mode policy: the container runs,
// and the record says it would have been refused.
func (p *Plugin) auditViolations(event string, s policy.Subject, v policy.Verdict, id string) {
	for _, rec := range audit.Violations(event, s, v) {
		rec.ContainerID = id
		p.opts.Audit.Write(rec)
	}
}
