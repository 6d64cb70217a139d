package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Uncovered is what happens to a container in a namespace no enabled policy
// covers; the node config chooses it.
type Uncovered int

const (
	// UncoveredAllow lets such containers run unchecked, as the product does.
	// It is the default.
	UncoveredAllow Uncovered = iota
	// UncoveredDeny refuses them ("uncovered: deny" in the node config).
	UncoveredDeny
)

func (u Uncovered) String() string {
	if u == UncoveredDeny {
		return "deny"
	}
	return "allow"
}

// Signatures tells Decide which witness keys have signed an image digest.
// pkg/verify implements it from signatures it discovered and verified ahead of
// time; Verified must answer from memory, as it runs within the NRI request.
type Signatures interface {
	Verified(digest string, key *Key) bool
}

// Request is one decision's input.
type Request struct {
	// Cluster is this node's cluster name, from the node config.
	Cluster string
	Subject Subject
	// Signatures says which keys signed which digests; nil means none did.
	Signatures Signatures
	// Now is the time exemptions and revocations are judged at; the zero
	// value means time.Now(), so that a forgotten field never makes
	// exemptions eternal and revocations void.
	Now       time.Time
	Uncovered Uncovered
}

// Judgement is how one covering policy judged the container.
type Judgement struct {
	Policy    string
	Mode      Mode
	Passed    bool
	Threshold int
	// Signed are the witnesses that signed; Missing those that did not.
	Signed  []string
	Missing []string
	// SignedDigest is the candidate digest the first signing witness signed.
	SignedDigest string
	Reason       string
}

// Result is a decision and what led to it.
type Result struct {
	Verdict Verdict
	// Covered is whether an enabled policy covers the namespace.
	Covered bool
	// Policies holds one entry per covering enabled policy that was judged
	// (none when a revocation or exemption decided first).
	Policies []Judgement
	// Violations are the failing audit-mode policies: the container runs, and
	// the daemon records each. Verdict.Violations carries the same, briefly.
	Violations []Judgement
}

// coverIndex maps cluster -> namespace -> enabled policies, in bundle order;
// "*" is a key like any other, looked up alongside the exact names.
type coverIndex map[string]map[string][]*SecurityPolicy

func buildIndex(ps []*SecurityPolicy) coverIndex {
	idx := coverIndex{}
	for i, p := range ps {
		p.pos = i
		if !p.Enabled {
			continue
		}
		for _, c := range p.Clusters {
			byNS := idx[c]
			if byNS == nil {
				byNS = map[string][]*SecurityPolicy{}
				idx[c] = byNS
			}
			for _, ns := range p.Namespaces {
				byNS[ns] = append(byNS[ns], p)
			}
		}
	}
	return idx
}

// Covering returns the enabled policies that cover (cluster, namespace), in
// bundle order: every one of them must pass for a container there to run.
// An empty result means the namespace is not covered. The slice may be
// shared with the bundle: do not modify it.
func (b *Bundle) Covering(cluster, namespace string) []*SecurityPolicy {
	var lists [4][]*SecurityPolicy
	n := 0
	for _, c := range [2]string{cluster, Wildcard} {
		byNS := b.index[c]
		if byNS == nil {
			continue
		}
		for _, ns := range [2]string{namespace, Wildcard} {
			if l := byNS[ns]; len(l) > 0 {
				lists[n] = l
				n++
			}
		}
		if cluster == Wildcard {
			break // do not look the same cluster up twice
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return lists[0] // the common case: no allocation
	}
	var out []*SecurityPolicy
	for _, l := range lists[:n] {
		out = append(out, l...)
	}
	slices.SortFunc(out, func(a, b *SecurityPolicy) int { return a.pos - b.pos })
	return slices.Compact(out)
}

// KeysFor returns the unrevoked keys of the witnesses that the enabled
// policies covering (cluster, namespace) name, each once: what pkg/verify
// must check an image's signatures against for a container there. Each key
// carries its public key, algorithm, fingerprint and witness; the policies'
// thresholds are in Evaluate's result.
func (b *Bundle) KeysFor(cluster, namespace string, now time.Time) []*Key {
	var ks []*Key
	seen := map[string]bool{}
	for _, p := range b.Covering(cluster, namespace) {
		for _, wn := range p.Witnesses {
			if seen[wn] {
				continue
			}
			seen[wn] = true
			for _, k := range b.witnessByName[wn].Keys {
				if b.keyRevoked(k.Fingerprint, now) == nil {
					ks = append(ks, k)
				}
			}
		}
	}
	return ks
}

// Decide judges one container against the bundle. The semantics, also in
// docs/POLICY.md:
//
//  1. Revocations first. An image whose digest (any candidate manifest or
//     index digest, or its config digest) is revoked, or whose config digest
//     is one a revocation records as the config of a revoked manifest
//     (configDigests), from the revocation's effective time on, is refused
//     in every namespace the node checks, covered or not, exemptions
//     notwithstanding: a revocation says the content itself is bad, and a
//     new manifest around the same config is the same content. A revoked key's signatures count for nothing from
//     the effective time on (a signature carries no trusted time, so one made
//     before the revocation is not honoured either).
//  2. Coverage. A policy covers (cluster, namespace) when one of its clusters
//     is the node's cluster (or "*") and one of its namespaces is the pod's
//     namespace (or "*"). Only enabled policies count; a disabled policy does
//     nothing. A namespace no enabled policy covers is not checked: the
//     container runs (rule "uncovered"), unless the node config says
//     "uncovered: deny" (UncoveredDeny), in which case it is refused unless an
//     exemption applies.
//  3. Exemptions. An unexpired exemption for the pod's namespace that names
//     one of the image's digests (or the pod) lets the container run without
//     signatures. Expired exemptions are ignored. Pod names are chosen by
//     whoever creates the pod: prefer image-digest exemptions.
//  4. Policies. Every enabled policy that covers the namespace must pass. A
//     policy passes when at least Threshold of its witnesses (all of them when
//     the bundle gives no threshold) have signed one of the image's candidate
//     digests; a witness has signed when pkg/verify verified a signature by
//     one of its unrevoked keys. A failing policy in enforce mode refuses the
//     container; one in audit mode lets it run and is reported in
//     Result.Violations.
//
// Namespace validity, the node config's allow lists and a missing bundle
// are judged before Decide, by pkg/decision. Decide does no I/O, costs the
// same whatever the number of exemptions and revocations (they are looked
// up by digest), and is safe for concurrent use.
func (b *Bundle) Decide(r Request) Result {
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	s := r.Subject
	if rv, d := b.revokedDigest(s, r.Now); rv != nil {
		return Result{Verdict: Verdict{Decision: Deny, Kind: RuleRevocation, Policy: rv.Name, Digest: d,
			Reason: fmt.Sprintf("image digest %s is revoked since %s (%s); run an image that is not revoked",
				d, rv.Effective.Format(time.RFC3339), orNone(rv.Reason))}}
	}
	covering := b.Covering(r.Cluster, s.Namespace)
	res := Result{Covered: len(covering) > 0}
	if !res.Covered && r.Uncovered == UncoveredAllow {
		res.Verdict = Verdict{Decision: Allow, Kind: RuleUncovered, Digest: s.PulledDigest,
			Reason: fmt.Sprintf("no enabled security policy covers namespace %q in cluster %q", s.Namespace, r.Cluster)}
		return res
	}
	if e, d := b.exemption(s, r.Now); e != nil {
		res.Verdict = Verdict{Decision: Allow, Kind: RuleExemption, Policy: e.Name, Digest: d,
			Reason: fmt.Sprintf("exempt until %s: %s", e.Expires.Format(time.RFC3339), e.Reason)}
		return res
	}
	if !res.Covered {
		res.Verdict = Verdict{Decision: Deny, Kind: RuleUncovered, Digest: s.PulledDigest,
			Reason: fmt.Sprintf("no enabled security policy covers namespace %q in cluster %q and the node refuses uncovered namespaces; enable a policy that covers it or add an exemption", s.Namespace, r.Cluster)}
		return res
	}
	res.Policies = make([]Judgement, 0, len(covering))
	// A witness named by several covering policies is checked once.
	signed := make(map[string]string, 4)
	var denied *Judgement
	for _, p := range covering {
		pr := b.judge(p, s, r.Signatures, r.Now, signed)
		res.Policies = append(res.Policies, pr)
		if !pr.Passed {
			if p.Mode == Audit {
				res.Violations = append(res.Violations, pr)
			} else if denied == nil {
				denied = &res.Policies[len(res.Policies)-1]
			}
		}
	}
	var viols []Violation
	for _, v := range res.Violations {
		viols = append(viols, Violation{Policy: v.Policy, Reason: v.Reason})
	}
	if denied != nil {
		res.Verdict = Verdict{Decision: Deny, Kind: RulePolicy, Policy: denied.Policy, Digest: s.PulledDigest, Reason: denied.Reason,
			Mode: string(Enforce), Violations: viols}
		return res
	}
	var names, why, witnesses []string
	digest := ""
	for _, pr := range res.Policies {
		if pr.Passed {
			names = append(names, pr.Policy)
			why = append(why, pr.Reason)
			if digest == "" {
				digest = pr.SignedDigest
			}
			for _, w := range pr.Signed {
				if !slices.Contains(witnesses, w) {
					witnesses = append(witnesses, w)
				}
			}
		}
	}
	for _, v := range res.Violations {
		why = append(why, "audit only: "+v.Reason)
	}
	name, mode := strings.Join(names, ","), Enforce
	if len(names) == 0 {
		name, mode = res.Violations[0].Policy, Audit
	}
	if digest == "" {
		digest = s.PulledDigest
	}
	res.Verdict = Verdict{Decision: Allow, Kind: RulePolicy, Policy: name, Digest: digest, Reason: strings.Join(why, "; "),
		// Trusted only when signatures carried every policy: an allow that
		// rests on an audit-mode failure is not the product's "Trusted Image".
		Trusted: len(viols) == 0, Witnesses: witnesses, Mode: string(mode), Violations: viols}
	return res
}

// judge applies one policy. signed caches, per witness name, the digest it
// signed ("" when it signed none) across the policies of one decision.
func (b *Bundle) judge(p *SecurityPolicy, s Subject, sigs Signatures, now time.Time, signed map[string]string) Judgement {
	pr := Judgement{Policy: p.Name, Mode: p.Mode, Threshold: p.Threshold}
	for _, wn := range p.Witnesses {
		d, seen := signed[wn]
		if !seen {
			d = b.witnessSigned(b.witnessByName[wn], s, sigs, now)
			signed[wn] = d
		}
		if d != "" {
			pr.Signed = append(pr.Signed, wn)
			if pr.SignedDigest == "" {
				pr.SignedDigest = d
			}
		} else {
			pr.Missing = append(pr.Missing, wn)
		}
	}
	pr.Passed = len(pr.Signed) >= p.Threshold
	need := "all of"
	if p.Threshold < len(p.Witnesses) {
		need = fmt.Sprintf("%d of", p.Threshold)
	}
	switch {
	case pr.Passed:
		pr.Reason = fmt.Sprintf("trusted by policy %q: signed by witness %s", p.Name, strings.Join(pr.Signed, ", "))
	case len(s.ImageDigests) == 0:
		pr.Reason = fmt.Sprintf("policy %q needs %s witnesses %s, but no image digest with config %s was found in the node's content store to check signatures on; pull the image by a signed digest",
			p.Name, need, strings.Join(p.Witnesses, ", "), s.ConfigDigest)
	default:
		pr.Reason = fmt.Sprintf("policy %q needs %s witnesses %s; signed by: %s; not signed by: %s (keys %s) for image digests %s; "+MissingSignatureHint,
			p.Name, need, strings.Join(p.Witnesses, ", "), orNone(strings.Join(pr.Signed, ", ")),
			strings.Join(pr.Missing, ", "), b.fingerprints(pr.Missing, now), strings.Join(s.ImageDigests, ", "))
	}
	return pr
}

// witnessSigned returns the first candidate digest that one of w's
// unrevoked keys signed, or "". Only this witness's keys are tried.
func (b *Bundle) witnessSigned(w *Witness, s Subject, sigs Signatures, now time.Time) string {
	if w == nil || sigs == nil {
		return ""
	}
	for _, k := range w.Keys {
		if b.keyRevoked(k.Fingerprint, now) != nil {
			continue
		}
		for _, d := range s.ImageDigests {
			if sigs.Verified(d, k) {
				return d
			}
		}
	}
	return ""
}

func (b *Bundle) fingerprints(witnesses []string, now time.Time) string {
	var fps []string
	for _, wn := range witnesses {
		for _, k := range b.witnessByName[wn].Keys {
			if b.keyRevoked(k.Fingerprint, now) == nil {
				fps = append(fps, k.Fingerprint)
			}
		}
	}
	if len(fps) == 0 {
		return "none unrevoked"
	}
	return strings.Join(fps, ", ")
}

// keyRevoked returns the revocation in effect at now for the key, or nil.
func (b *Bundle) keyRevoked(fp string, now time.Time) *Revocation {
	return inEffect(b.rules().revokedKey[fp], now)
}

// KeyRevoked reports whether the key's signatures no longer count at now.
func (b *Bundle) KeyRevoked(fp string, now time.Time) bool { return b.keyRevoked(fp, now) != nil }

// revokedDigest returns the revocation in effect that refuses the subject,
// and the digest it names: a candidate manifest or index digest, or the
// config digest (named in imageDigests, or in configDigests as the config
// of a revoked manifest). When several apply, the first candidate in the
// subject's order decides, then the config.
func (b *Bundle) revokedDigest(s Subject, now time.Time) (*Revocation, string) {
	ix := b.rules()
	if len(ix.revokedDigest) == 0 && len(ix.revokedConfig) == 0 {
		return nil, ""
	}
	for _, d := range s.ImageDigests {
		if r := inEffect(ix.revokedDigest[d], now); r != nil {
			return r, d
		}
	}
	if s.ConfigDigest == "" {
		return nil, ""
	}
	if r := inEffect(ix.revokedDigest[s.ConfigDigest], now); r != nil {
		return r, s.ConfigDigest
	}
	if r := inEffect(ix.revokedConfig[s.ConfigDigest], now); r != nil {
		return r, s.ConfigDigest
	}
	return nil, ""
}

// exemption returns the unexpired exemption, first in bundle order, that
// lets the subject run in its namespace, and the digest it names (the
// pulled digest for a pod exemption).
func (b *Bundle) exemption(s Subject, now time.Time) (*Exemption, string) {
	ns := b.rules().exemptions[s.Namespace]
	if ns == nil {
		return nil, ""
	}
	var best *Exemption
	if s.Pod != "" {
		best = ns.firstUnexpired(ns.byPod[s.Pod], now, best)
	}
	for _, d := range s.ImageDigests {
		best = ns.firstUnexpired(ns.byDigest[d], now, best)
	}
	if s.ConfigDigest != "" {
		best = ns.firstUnexpired(ns.byDigest[s.ConfigDigest], now, best)
	}
	if best == nil {
		return nil, ""
	}
	if best.ImageDigest == "" {
		return best, s.PulledDigest
	}
	return best, best.ImageDigest
}

// MissingSignatureHint ends a refusal for missing signatures. The node
// replaces it when the signatures could not be read at all (a registry
// outage is not a missing signature).
const MissingSignatureHint = "sign the image digest with a missing witness's key or add an exemption"

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
