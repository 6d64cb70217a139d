package policy

import (
	"context"
	"fmt"
)

// Decider combines the node's decision sources into one verdict. Today: the
// allow lists of the node config. A namespace no source covers is allowed,
// as in the product this is modelled on.
type Decider struct {
	Allowlists Allowlists
}

// Decide returns the verdict for s.
func (d *Decider) Decide(_ context.Context, s Subject) Verdict {
	if v, covered := d.Allowlists.Decide(s); covered {
		return v
	}
	digest := s.ConfigDigest
	if len(s.ImageDigests) > 0 {
		digest = s.ImageDigests[0]
	}
	return Verdict{Decision: Allow, Rule: "uncovered", Digest: digest,
		Reason: fmt.Sprintf("no allow list or policy covers namespace %q", s.Namespace)}
}
