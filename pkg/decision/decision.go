// Package decision is the node's decision, in one pure place: given the
// node's settings, the policy bundle in force (or its absence), what the
// node knows of signatures, and the time, it returns one typed verdict for a
// container. It does no I/O: no NRI, no containerd, no network. Fetching
// signatures within the request's deadline is the caller's (pkg/daemon).
//
// The order, also in docs/POLICY.md:
//
//  1. Namespace: a pod namespace that is not a Kubernetes namespace name
//     (DNS-1123 label) is refused, whatever else applies (RuleNamespace).
//     Only containers made outside the CRI may have no namespace.
//  2. Allow list: an image on its namespace's allow list runs (RuleAllowlist).
//  3. No bundle: when a bundle source is configured but no bundle is in
//     force, everything else is refused (RuleNoBundle).
//  4. Bundle: revocations, coverage, exemptions, then every covering
//     policy's N-of-M witnesses, enforce or audit (pkg/policy's Decide). A
//     namespace the bundle does not cover but an allow list does is refused
//     by the allow list.
package decision

import (
	"context"
	"fmt"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Node is what the node config says about decisions.
type Node struct {
	// Cluster is this node's cluster name, matched against policies' clusters.
	Cluster    string
	Allowlists policy.Allowlists
	// Uncovered is what happens in a namespace no allow list or policy
	// covers; the zero value lets containers there run, as the product does.
	Uncovered policy.Uncovered
}

// Decider is one (node settings, bundle) pair. The zero Now means
// time.Now. A Decider is safe for concurrent use.
type Decider struct {
	Node Node
	// Bundle is the policy bundle in force; nil when none is configured or
	// none is in force (see BundleMissing).
	Bundle *policy.Bundle
	// BundleMissing: a bundle source is configured but no bundle is in
	// force; then only allow-listed images run (fail closed).
	BundleMissing bool
	// Signatures says which witness keys signed which digests; it must
	// answer from memory. Nil means nothing is signed.
	Signatures policy.Signatures
	Now        func() time.Time
}

// Decide implements plugin.Decider and watch.Decider; ctx is unused (the
// decision does no I/O).
func (d *Decider) Decide(_ context.Context, s policy.Subject) policy.Verdict {
	return d.Judge(s)
}

// Judge returns the verdict for s.
func (d *Decider) Judge(s policy.Subject) policy.Verdict {
	if v, bad := namespaceVerdict(s); bad {
		return v
	}
	av, listed := d.Node.Allowlists.Decide(s)
	if listed && av.Allowed() {
		return av
	}
	if d.BundleMissing {
		return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleNoBundle, Digest: s.PulledDigest,
			Reason: "no policy bundle is in force on this node (see the daemon's log: the source is unreachable or its bundles were refused); only allow-listed images run until one is"}
	}
	if d.Bundle == nil {
		if listed {
			return av
		}
		return d.uncovered(s)
	}
	res := d.Bundle.Decide(policy.Request{Cluster: d.Node.Cluster, Subject: s, Signatures: d.Signatures,
		Now: d.now(), Uncovered: d.Node.Uncovered})
	if listed && !res.Covered && res.Verdict.Kind == policy.RuleUncovered {
		return av // the allow list covers the namespace; the bundle does not
	}
	return res.Verdict
}

// WantsSignatures reports whether the verdict for s may depend on
// signatures: the namespace is valid, the image is not allow-listed there,
// and an enabled policy of the bundle in force covers the namespace. The
// caller fetches signatures only then.
func (d *Decider) WantsSignatures(s policy.Subject) bool {
	if _, bad := namespaceVerdict(s); bad || d.Bundle == nil || d.BundleMissing {
		return false
	}
	if av, listed := d.Node.Allowlists.Decide(s); listed && av.Allowed() {
		return false
	}
	return len(d.Bundle.Covering(d.Node.Cluster, s.Namespace)) > 0
}

func (d *Decider) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

func (d *Decider) uncovered(s policy.Subject) policy.Verdict {
	if d.Node.Uncovered == policy.UncoveredDeny {
		return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleUncovered, Digest: s.PulledDigest,
			Reason: fmt.Sprintf("no allow list or policy covers namespace %q and the node config says uncovered: deny", s.Namespace)}
	}
	return policy.Verdict{Decision: policy.Allow, Kind: policy.RuleUncovered, Digest: s.PulledDigest,
		Reason: fmt.Sprintf("no allow list or policy covers namespace %q", s.Namespace)}
}

// namespaceVerdict refuses a namespace that is not a Kubernetes namespace
// name: the CRI caller chooses it, and "default " or "DEFAULT" must not
// escape the policies that cover "default".
func namespaceVerdict(s policy.Subject) (policy.Verdict, bool) {
	if s.Namespace == "" && s.OutsideCRI {
		return policy.Verdict{}, false
	}
	if ValidNamespace(s.Namespace) {
		return policy.Verdict{}, false
	}
	why := "it is not a DNS-1123 label: at most 63 characters, lower-case letters, digits and '-', starting and ending with a letter or digit"
	if s.Namespace == "" {
		why = "it is empty; a container created through the CRI belongs to a pod namespace"
	}
	return policy.Verdict{Decision: policy.Deny, Kind: policy.RuleNamespace, Digest: s.PulledDigest,
		Reason: fmt.Sprintf("pod namespace %q is not a valid Kubernetes namespace name (%s); no policy is looked up for it", s.Namespace, why)}, true
}

// ValidNamespace reports whether ns is a Kubernetes namespace name (a
// DNS-1123 label).
func ValidNamespace(ns string) bool {
	if len(ns) == 0 || len(ns) > 63 {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(ns)-1:
		default:
			return false
		}
	}
	return true
}
