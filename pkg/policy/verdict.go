// Package policy is the model of what may run: subjects and typed verdicts,
// allow lists, the policy bundle (witnesses, security policies, exemptions,
// revocations) with its strict parsing, marshalling, editing, validity dates
// and detached signatures, and the bundle's own judgement of a subject. It
// imports only the standard library, YAML and the crypto vocabulary
// (pkg/keys): no NRI, no containerd, no registry client, no KMS SDK
// (internal/depcheck). The node's bundle store is pkg/bundlestore; OCI
// transport is pkg/bundleoci; the node's whole decision is pkg/decision.
package policy

import (
	"fmt"
	"strings"
)

// Subject is what is judged: one container about to be created (or running),
// identified by the image the runtime will actually run.
type Subject struct {
	Namespace string // the pod's Kubernetes namespace
	Pod       string
	Container string
	// ImageName is the reference the runtime reports. It is for messages only:
	// names can be re-pointed, and decisions are made on digests.
	ImageName string
	// ConfigDigest is the image config digest (the CRI image ID): the one identity
	// the runtime reports that fixes the root filesystem.
	ConfigDigest string
	// ImageDigests are the manifest and index digests found in the node's
	// content store whose config is ConfigDigest. Any of them may carry the
	// allow-list entry or the signatures that make the container trusted.
	ImageDigests []string
	// Repositories are, per image digest, the repositories the node pulled it
	// from: where its signatures are looked for. Not used in decisions.
	Repositories map[string][]string
	// PulledDigest is the manifest or index digest containerd pulled for the
	// container's reference (NRI Container.image digest, or the image
	// record's target). It is what the audit trail names when no signature
	// decided; never used to decide.
	PulledDigest string
	// OutsideCRI is true for containers made through containerd's own API
	// (judged by pkg/watch): they have no Kubernetes namespace, so an empty
	// Namespace is valid for them only. The zero value (a CRI container)
	// refuses an empty namespace.
	OutsideCRI bool
}

// Decision is the outcome of a verdict.
type Decision string

const (
	// Allow: the container may run (trusted, exempt, or not covered).
	Allow Decision = "allow"
	// Deny: the container must be refused.
	Deny Decision = "deny"
)

// RuleKind is what decided a verdict: one typed value per rule of the node
// decision, so that code never parses Rule strings.
type RuleKind string

const (
	RuleAllowlist     RuleKind = "allowlist"      // the node config's allow list
	RulePolicy        RuleKind = "policy"         // a security policy of the bundle (Verdict.Policy names it)
	RuleExemption     RuleKind = "exemption"      // a bundle exemption (break-glass)
	RuleRevocation    RuleKind = "revocation"     // a bundle revocation
	RuleUncovered     RuleKind = "uncovered"      // no allow list or policy covers the namespace
	RuleDeadline      RuleKind = "deadline"       // the decision did not finish in time
	RuleImageIdentity RuleKind = "image-identity" // which image the container runs is unknown or unreadable
	RuleNoBundle      RuleKind = "no-bundle"      // a bundle source is configured, none is in force
	RuleNamespace     RuleKind = "namespace"      // the pod namespace is not a valid Kubernetes namespace
	RuleNodeIntegrity RuleKind = "node-integrity" // the container would reach the enforcing machinery
	RuleAdjustment    RuleKind = "adjustment"     // another NRI plugin changed the container in a refused way
)

// RuleKinds lists every RuleKind, so that code that renders verdicts (the
// audit trail, metrics) can be tested against each.
var RuleKinds = []RuleKind{RuleAllowlist, RulePolicy, RuleExemption, RuleRevocation, RuleUncovered, RuleDeadline,
	RuleImageIdentity, RuleNoBundle, RuleNamespace, RuleNodeIntegrity, RuleAdjustment}

// Named reports whether verdicts of this kind name a bundle document in
// Verdict.Policy: a security policy, an exemption or a revocation.
func (k RuleKind) Named() bool {
	return k == RulePolicy || k == RuleExemption || k == RuleRevocation
}

// Verdict is the decision for one subject, with what an operator needs to
// understand it.
type Verdict struct {
	Decision Decision
	// Kind is what decided (see RuleKind); Policy names the security policy,
	// exemption or revocation when one did (several policies that all passed
	// are joined with commas), and is empty otherwise.
	Kind   RuleKind
	Policy string
	// Digest is the image digest the decision rests on: the digest whose
	// signature, allow-list entry, exemption or revocation decided; when
	// none did, the digest containerd pulled (Subject.PulledDigest).
	Digest string
	// Reason says why, in words an operator can act on.
	Reason string
	// Trusted is true when witnesses' signatures made the image trusted (the
	// product's "Trusted Image" label), not an allow list or an exemption.
	Trusted bool
	// Witnesses are the witnesses whose verified signatures count for the verdict.
	Witnesses []string
	// Mode is the mode of the policy that decided (enforce or audit), if any.
	Mode string
	// Fetched is true when signatures had to be fetched during the decision
	// (a verdict-cache miss).
	Fetched bool
	// Violations are audit-mode policies the image fails: the container runs
	// and each is recorded as "would-deny".
	Violations []Violation
}

// Violation is a failing audit-mode policy.
type Violation struct {
	Policy string
	Reason string
}

// Allowed reports whether the verdict lets the container run.
func (v Verdict) Allowed() bool { return v.Decision == Allow }

// RuleName is what decided as one string, for people and for the
// nri-csig.io/verdict annotation: the kind, and "/<name>" when a bundle
// document decided ("policy/prod", "exemption/inc-1", "uncovered").
func (v Verdict) RuleName() string {
	if v.Policy == "" {
		return string(v.Kind)
	}
	return string(v.Kind) + "/" + v.Policy
}

func (v Verdict) String() string {
	return fmt.Sprintf("%s by %s: %s", v.Decision, v.RuleName(), v.Reason)
}

// digestsString renders candidate digests for messages.
func digestsString(ds []string) string {
	if len(ds) == 0 {
		return "none found in the node's content store"
	}
	return strings.Join(ds, ", ")
}
