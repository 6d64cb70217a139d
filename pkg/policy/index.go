package policy

import "time"

// ruleIndex holds the bundle's exemptions and revocations keyed by what a
// decision looks them up by, so that a decision costs the same with 10 or
// 10,000 of them. Each list keeps bundle order: the first entry in effect
// wins, as it did when the lists were scanned.
type ruleIndex struct {
	// revokedDigest: image (manifest, index or config) digest -> revocations
	// naming it in imageDigests.
	revokedDigest map[string][]*Revocation
	// revokedConfig: config digest -> revocations naming it in configDigests
	// (the configs of the revoked manifests, recorded by the CLI).
	revokedConfig map[string][]*Revocation
	// revokedKey: key fingerprint -> revocations naming it.
	revokedKey map[string][]*Revocation
	// exemptions: namespace -> its exemptions by image digest and by pod.
	exemptions map[string]*nsExemptions
}

type nsExemptions struct {
	byDigest map[string][]*Exemption
	byPod    map[string][]*Exemption
	pos      map[*Exemption]int // bundle order, to pick the first of several matches
}

func buildRuleIndex(b *Bundle) *ruleIndex {
	ix := &ruleIndex{
		revokedDigest: map[string][]*Revocation{},
		revokedConfig: map[string][]*Revocation{},
		revokedKey:    map[string][]*Revocation{},
		exemptions:    map[string]*nsExemptions{},
	}
	for _, r := range b.Revocations {
		for _, d := range r.ImageDigests {
			ix.revokedDigest[d] = append(ix.revokedDigest[d], r)
		}
		for _, d := range r.ConfigDigests {
			ix.revokedConfig[d] = append(ix.revokedConfig[d], r)
		}
		for _, fp := range r.Keys {
			ix.revokedKey[fp] = append(ix.revokedKey[fp], r)
		}
	}
	for i, e := range b.Exemptions {
		ns := ix.exemptions[e.Namespace]
		if ns == nil {
			ns = &nsExemptions{byDigest: map[string][]*Exemption{}, byPod: map[string][]*Exemption{}, pos: map[*Exemption]int{}}
			ix.exemptions[e.Namespace] = ns
		}
		ns.pos[e] = i
		if e.Pod != "" {
			ns.byPod[e.Pod] = append(ns.byPod[e.Pod], e)
		}
		if e.ImageDigest != "" {
			ns.byDigest[e.ImageDigest] = append(ns.byDigest[e.ImageDigest], e)
		}
	}
	return ix
}

// rules returns the bundle's rule index, building it on first use. A parsed
// bundle is immutable; the CLI's edits drop the index (see edit.go).
// Prepare builds the bundle's exemption and revocation indexes now, so that
// the first decision does not pay for them (the node's bundle store calls it
// before putting a bundle in force).
func (b *Bundle) Prepare() { b.rules() }

func (b *Bundle) rules() *ruleIndex {
	if ix := b.ruleIx.Load(); ix != nil {
		return ix
	}
	ix := buildRuleIndex(b)
	b.ruleIx.Store(ix)
	return ix
}

// inEffect returns the first revocation of rs in effect at now, or nil.
func inEffect(rs []*Revocation, now time.Time) *Revocation {
	for _, r := range rs {
		if !now.Before(r.Effective) {
			return r
		}
	}
	return nil
}

// firstUnexpired returns, of best (the match so far, or nil) and the
// unexpired exemptions of es, the one that comes first in the bundle.
func (ns *nsExemptions) firstUnexpired(es []*Exemption, now time.Time, best *Exemption) *Exemption {
	for _, e := range es {
		if !now.Before(e.Expires) {
			continue
		}
		if best == nil || ns.pos[e] < ns.pos[best] {
			best = e
		}
	}
	return best
}
