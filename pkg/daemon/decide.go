package daemon

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nri-csig/nri-csig/pkg/decision"
	"github.com/nri-csig/nri-csig/pkg/imagestore"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
	"github.com/nri-csig/nri-csig/pkg/plugin"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// prefetchTimeout bounds one signature discovery started on behalf of a
// request: the request waits only for its own budget, the discovery goes on
// so that kubelet's retry finds the signatures verified.
const prefetchTimeout = 30 * time.Second

// refreshAfter is how old the signatures of a refused image may be before a
// request looks again: an image signed after it landed is trusted at
// kubelet's next retry, not only after a restart.
const refreshAfter = 30 * time.Second

// decider is the node's decision (pkg/decision) plus its I/O: fetching the
// signatures a decision needs within the request's deadline. One decider is
// built per (node config, bundle); a reload builds a new one.
type decider struct {
	node   *nodeconfig.Config
	bundle *policy.Bundle // nil: no bundle configured or none valid yet
	// bundleMissing: a bundle source is configured but no bundle is in force;
	// then only allow-listed images run (fail closed).
	bundleMissing bool
	sigs          *verify.Store
	fetch         *prefetcher
	now           func() time.Time
	// refreshAfter: see the constant; zero means the constant.
	refreshAfter time.Duration
	// sigRepos are the bundle's signature repositories for the node's
	// cluster (policy.Bundle.SignatureRepositories), searched beside each
	// image's own repositories; named in refusals.
	sigRepos []string
}

// signatures adapts the store to what pkg/policy asks.
type signatures struct{ s *verify.Store }

func (a signatures) Verified(digest string, key *policy.Key) bool {
	return a.s.Verified(digest, key.Fingerprint)
}

// pure is the decision without I/O.
func (d *decider) pure() *decision.Decider {
	uncovered := policy.UncoveredAllow
	if d.node.UncoveredDeny {
		uncovered = policy.UncoveredDeny
	}
	return &decision.Decider{
		Node:   decision.Node{Cluster: d.node.Cluster, Allowlists: d.node.Allowlists, Uncovered: uncovered},
		Bundle: d.bundle, BundleMissing: d.bundleMissing, Signatures: signatures{d.sigs}, Now: d.now,
	}
}

// Decide implements plugin.Decider: pkg/decision judges; this makes sure the
// signatures it needs were looked up first (see ensureSignatures), and looks
// again once when a policy refuses on signatures older than refreshAfter.
func (d *decider) Decide(ctx context.Context, s policy.Subject) policy.Verdict {
	pd := d.pure()
	var fetched bool
	var pending []string
	if pd.WantsSignatures(s) {
		fetched, pending = d.ensureSignatures(ctx, s)
	}
	v := pd.Judge(s)
	if refusedByPolicy(v) && d.refresh(ctx, s) {
		fetched = true
		v = pd.Judge(s)
	}
	v.Fetched = fetched
	if refusedByPolicy(v) {
		if d.unreadable(s, pending) {
			v.Reason = strings.Replace(v.Reason, policy.MissingSignatureHint, unreadableHint, 1)
		}
		v.Reason += "; signatures: " + d.describe(s, pending)
	}
	return v
}

// DecideNow implements plugin.NowDecider: the decision on the caller's
// goroutine, when it needs nothing it would wait for. That is the common
// case, an image whose signatures the store holds, deciding in a few
// microseconds, without the goroutine and the timer that bound Decide. ok
// is false, and the caller asks Decide, when a covering policy needs
// signatures not looked up yet, the store is busy, or a policy refuses
// (Decide may look again, and explains the refusal).
func (d *decider) DecideNow(s policy.Subject) (policy.Verdict, bool) {
	pd := d.pure()
	if pd.WantsSignatures(s) {
		for _, dg := range s.ImageDigests {
			if known, ok := d.sigs.KnownNow(dg); !ok || !known {
				return policy.Verdict{}, false
			}
		}
	}
	now := &signaturesNow{s: d.sigs}
	pd.Signatures = now
	v := pd.Judge(s)
	if now.busy || refusedByPolicy(v) {
		return policy.Verdict{}, false
	}
	return v, true
}

// signaturesNow is signatures without waiting: busy records that the store
// was held and an answer is unknown (the verdict then does not count).
type signaturesNow struct {
	s    *verify.Store
	busy bool
}

func (a *signaturesNow) Verified(digest string, key *policy.Key) bool {
	v, ok := a.s.VerifiedNow(digest, key.Fingerprint)
	a.busy = a.busy || !ok
	return v
}

// The plugin decides at once with these when it can (plugin.NowDecider).
var (
	_ plugin.NowDecider  = (*decider)(nil)
	_ plugin.NowResolver = (*imagestore.Index)(nil)
)

// unreadableHint replaces policy.MissingSignatureHint when no candidate's
// signatures could be read: the operator should look at the registry, not
// sign again.
const unreadableHint = "the image's signatures could not be read (registry unreachable, refusing access, or still being fetched), which is not a missing signature; the node keeps trying and kubelet retries"

// unreadable reports whether no candidate digest's signatures could be
// read: every one is pending or its look-up failed.
func (d *decider) unreadable(s policy.Subject, pending []string) bool {
	if len(s.ImageDigests) == 0 {
		return false
	}
	for _, dg := range s.ImageDigests {
		if !slices.Contains(pending, dg) && !d.sigs.Unreadable(dg) {
			return false
		}
	}
	return true
}

func refusedByPolicy(v policy.Verdict) bool { return !v.Allowed() && v.Kind == policy.RulePolicy }

// ensureSignatures makes sure the store has looked up the signatures of the
// subject's digests when a policy covers it: from the persisted store first,
// else from the sources, waiting for those at most until ctx's deadline
// (less a margin to answer in). It reports whether it had to fetch, and the
// digests still pending.
func (d *decider) ensureSignatures(ctx context.Context, s policy.Subject) (fetched bool, pending []string) {
	var waits []<-chan struct{}
	var waiting []string
	for _, dg := range s.ImageDigests {
		if d.sigs.Known(dg) || d.sigs.Load(ctx, dg) {
			continue
		}
		fetched = true
		waits = append(waits, d.fetch.start(dg, s.Repositories[dg]))
		waiting = append(waiting, dg)
	}
	wait, cancel := context.WithCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		wait, cancel = context.WithDeadline(ctx, dl.Add(-100*time.Millisecond))
	}
	defer cancel()
	for i, c := range waits {
		select {
		case <-c:
		case <-wait.Done():
			return fetched, waiting[i:]
		}
	}
	return fetched, nil
}

// refresh looks for new signatures of digests whose signatures are older
// than refreshAfter, within ctx's deadline. It reports whether it looked.
func (d *decider) refresh(ctx context.Context, s policy.Subject) bool {
	var waits []<-chan struct{}
	for _, dg := range s.ImageDigests {
		after := d.refreshAfter
		if after == 0 {
			after = refreshAfter
		}
		if time.Since(d.sigs.FetchedAt(dg)) > after {
			waits = append(waits, d.fetch.start(dg, s.Repositories[dg]))
		}
	}
	if len(waits) == 0 {
		return false
	}
	wait, cancel := context.WithCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		wait, cancel = context.WithDeadline(ctx, dl.Add(-100*time.Millisecond))
	}
	defer cancel()
	for _, c := range waits {
		select {
		case <-c:
		case <-wait.Done():
			return true
		}
	}
	return true
}

// describe says what the store knows of each digest, for refusals.
func (d *decider) describe(s policy.Subject, pending []string) string {
	if len(s.ImageDigests) == 0 {
		return "the image has no manifest in the node's content store to look signatures up for"
	}
	var parts []string
	for _, dg := range s.ImageDigests {
		st := d.sigs.Status(dg)
		for _, p := range pending {
			if p == dg {
				st = "verification pending (still fetching; kubelet retries)"
			}
		}
		if st == verify.ErrNoSignatures.Error() {
			// Name where the store looked: a signature stored elsewhere (a
			// witness without its signatureRepository) shows up here.
			st += searchedText(searchRepositories(s.Repositories[dg], d.sigRepos))
		}
		parts = append(parts, dg+": "+st)
	}
	return strings.Join(parts, "; ")
}

// prefetcher runs one signature discovery per digest at a time, detached
// from the request that asked for it.
type prefetcher struct {
	sigs    *verify.Store
	onError func(digest string, err error)
	// sigRepos: the signature repositories of the bundle in force, searched
	// beside each image's own (see searchRepositories).
	sigRepos atomic.Pointer[[]string]
	mu       sync.Mutex
	busy     map[string]chan struct{}
}

func newPrefetcher(s *verify.Store) *prefetcher {
	return &prefetcher{sigs: s, busy: map[string]chan struct{}{}}
}

// start begins (or joins) the discovery of digest's signatures and returns a
// channel closed when it ends.
func (p *prefetcher) start(digest string, repos []string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.busy[digest]; ok {
		return c
	}
	c := make(chan struct{})
	p.busy[digest] = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
		defer cancel()
		if err := p.sigs.Prefetch(ctx, digest, searchRepositories(repos, p.signatureRepositories())); err != nil && p.onError != nil {
			p.onError(digest, err)
		}
		p.mu.Lock()
		delete(p.busy, digest)
		p.mu.Unlock()
		close(c)
	}()
	return c
}
