package policy

import (
	"fmt"
	"slices"
)

// Allowlists are per-namespace lists of image digests that may run without
// further checks: exemptions for system images, in the spirit of kritis'
// AdmissionAllowlist. A namespace without a list is not covered by them.
type Allowlists map[string][]string

// Decide judges s against the allow list of its namespace. covered is false
// when the namespace has no allow list, and then the verdict is meaningless.
func (a Allowlists) Decide(s Subject) (v Verdict, covered bool) {
	list, ok := a[s.Namespace]
	if !ok {
		return Verdict{}, false
	}
	for _, d := range s.ImageDigests {
		if slices.Contains(list, d) {
			return Verdict{Decision: Allow, Kind: RuleAllowlist, Digest: d,
				Reason: fmt.Sprintf("image digest %s is on the allow list of namespace %q", d, s.Namespace)}, true
		}
	}
	// The config digest is accepted too: it is what "crictl images" shows as IMAGE ID.
	if s.ConfigDigest != "" && slices.Contains(list, s.ConfigDigest) {
		return Verdict{Decision: Allow, Kind: RuleAllowlist, Digest: s.ConfigDigest,
			Reason: fmt.Sprintf("image config digest %s is on the allow list of namespace %q", s.ConfigDigest, s.Namespace)}, true
	}
	return Verdict{Decision: Deny, Kind: RuleAllowlist, Digest: s.PulledDigest,
		Reason: fmt.Sprintf("image digest is not on the allow list of namespace %q (image digests: %s; config digest %s)",
			s.Namespace, digestsString(s.ImageDigests), s.ConfigDigest)}, true
}
