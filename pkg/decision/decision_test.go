package decision

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

func digest(c string) string { return "sha256:" + strings.Repeat(c, 64) }

var (
	now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

	fpCI, fpSec, fpQA = digest("1"), digest("2"), digest("3")

	dSigned     = digest("a") // signed by ci and sec
	dSignedCI   = digest("b") // signed by ci only
	dUnsigned   = digest("0") // sorts first: never the digest a record names unless pulled
	dPulled     = digest("d")
	dExempt     = digest("e")
	dExpired    = digest("f")
	dRevoked    = digest("5")
	dRewrapped  = digest("6")
	dFuture     = digest("7")
	dSys        = digest("8")
	dListed     = digest("9")
	dSignedQA   = digest("4") // signed by sec and the revoked qa key
	cfg         = digest("c")
	cfgRevoked  = "sha256:" + strings.Repeat("ce", 32)
	signatureDB = signedBy{
		dSigned:   {fpCI, fpSec},
		dSignedCI: {fpCI},
		dSignedQA: {fpSec, fpQA},
	}
)

func testBundle(t *testing.T) *policy.Bundle {
	t.Helper()
	b := policy.NewBundle("test")
	for name, fp := range map[string]string{"ci": fpCI, "sec": fpSec, "qa": fpQA} {
		if err := b.AddWitness(&policy.Witness{Name: name, Keys: []*policy.Key{{Fingerprint: fp}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*policy.SecurityPolicy{
		{Name: "prod", Witnesses: []string{"ci"}, Threshold: 1, Namespaces: []string{"prod"}, Mode: policy.Enforce},
		{Name: "watch", Witnesses: []string{"sec"}, Threshold: 1, Namespaces: []string{"prod"}, Mode: policy.Audit},
		{Name: "two-of-three", Witnesses: []string{"ci", "sec", "qa"}, Threshold: 2, Namespaces: []string{"finance"}, Mode: policy.Enforce},
		{Name: "staging-audit", Witnesses: []string{"sec"}, Threshold: 1, Namespaces: []string{"staging"}, Mode: policy.Audit},
		{Name: "off", Witnesses: []string{"ci"}, Threshold: 1, Namespaces: []string{"dev"}, Mode: policy.Enforce},
	} {
		p.Clusters, p.Enabled = []string{"c1"}, p.Name != "off"
		if err := b.AddPolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []*policy.Exemption{
		{Name: "old", Namespace: "prod", ImageDigest: dExpired, Expires: now.Add(-time.Hour), Reason: "over"},
		{Name: "inc-1", Namespace: "prod", ImageDigest: dExempt, Expires: now.Add(time.Hour), Reason: "hotfix"},
		{Name: "inc-2", Namespace: "prod", ImageDigest: dExempt, Expires: now.Add(2 * time.Hour), Reason: "later duplicate"},
		{Name: "debug-pod", Namespace: "prod", Pod: "debug", Expires: now.Add(time.Hour), Reason: "debugging"},
		{Name: "revoked-anyway", Namespace: "prod", ImageDigest: dRevoked, Expires: now.Add(time.Hour), Reason: "too late"},
	} {
		if err := b.AddExemption(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*policy.Revocation{
		{Name: "bad-image", ImageDigests: []string{dRevoked}, ConfigDigests: []string{cfgRevoked}, Effective: now.Add(-time.Minute), Reason: "compromised runner"},
		{Name: "leaked", Keys: []string{fpQA}, Effective: now.Add(-time.Minute), Reason: "key leaked"},
		{Name: "next-week", ImageDigests: []string{dFuture}, Effective: now.Add(7 * 24 * time.Hour)},
	} {
		if err := b.AddRevocation(r); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func subj(ns string, digests ...string) policy.Subject {
	return policy.Subject{Namespace: ns, Pod: "web", Container: "app", ConfigDigest: cfg,
		ImageDigests: digests, PulledDigest: dPulled}
}

type want struct {
	decision policy.Decision
	kind     policy.RuleKind
	policy   string
	digest   string
	trusted  bool
	mode     string
	reason   string
}

// TestJudge walks every verdict kind the node decision makes, in every
// place of its order.
func TestJudge(t *testing.T) {
	b := testBundle(t)
	node := Node{Cluster: "c1", Allowlists: policy.Allowlists{"kube-system": {dSys}, "prod": {dListed}}}
	withBundle := &Decider{Node: node, Bundle: b, Signatures: signatureDB, Now: func() time.Time { return now }}
	denyUncovered := *withBundle
	denyUncovered.Node.Uncovered = policy.UncoveredDeny
	missing := &Decider{Node: node, BundleMissing: true}
	none := &Decider{Node: node}
	noneDeny := &Decider{Node: Node{Uncovered: policy.UncoveredDeny}}

	outside := subj("", dUnsigned)
	outside.OutsideCRI = true
	rewrapped := subj("dev", dRewrapped)
	rewrapped.ConfigDigest = cfgRevoked
	configRevoked := subj("dev", dUnsigned)
	configRevoked.ConfigDigest = dRevoked
	debugPod := subj("prod", dUnsigned)
	debugPod.Pod = "debug"

	for name, tc := range map[string]struct {
		d    *Decider
		s    policy.Subject
		want want
	}{
		// 1. Namespaces, in every mode, before anything else.
		"trailing space":         {withBundle, subj("default ", dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", `"default "`}},
		"upper case":             {withBundle, subj("DEFAULT", dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "DNS-1123"}},
		"dot":                    {withBundle, subj("default.x", dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "not a valid Kubernetes namespace"}},
		"64 characters":          {withBundle, subj(strings.Repeat("a", 64), dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "63"}},
		"leading dash":           {none, subj("-dev", dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "DNS-1123"}},
		"bad namespace listed":   {none, subj("kube-system ", dSys), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "not a valid"}},
		"bad namespace, missing": {missing, subj("Prod", dSys), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "not a valid"}},
		"empty namespace, CRI":   {withBundle, subj("", dSigned), want{policy.Deny, policy.RuleNamespace, "", dPulled, false, "", "it is empty"}},
		"empty, outside the CRI": {withBundle, outside, want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", "no enabled security policy"}},
		"63 characters":          {withBundle, subj(strings.Repeat("a", 63), dUnsigned), want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", "no enabled"}},
		// 2. Allow lists.
		"allow-listed":              {withBundle, subj("kube-system", dUnsigned, dSys), want{policy.Allow, policy.RuleAllowlist, "", dSys, false, "", "allow list"}},
		"allow-listed config":       {withBundle, policy.Subject{Namespace: "prod", ConfigDigest: dListed}, want{policy.Allow, policy.RuleAllowlist, "", dListed, false, "", "config digest"}},
		"not on list, uncovered":    {withBundle, subj("kube-system", dUnsigned), want{policy.Deny, policy.RuleAllowlist, "", dPulled, false, "", "not on the allow list"}},
		"listed beats policy":       {withBundle, subj("prod", dListed), want{policy.Allow, policy.RuleAllowlist, "", dListed, false, "", "allow list"}},
		"not on list, policy rules": {withBundle, subj("prod", dSignedCI), want{policy.Allow, policy.RulePolicy, "prod", dSignedCI, false, "enforce", "audit only"}},
		// 3. No bundle in force.
		"no bundle":               {missing, subj("dev", dSigned), want{policy.Deny, policy.RuleNoBundle, "", dPulled, false, "", "no policy bundle is in force"}},
		"no bundle, allow-listed": {missing, subj("kube-system", dSys), want{policy.Allow, policy.RuleAllowlist, "", dSys, false, "", "allow list"}},
		"none configured":         {none, subj("dev", dUnsigned), want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", "no allow list or policy"}},
		"none configured, listed": {none, subj("kube-system", dUnsigned), want{policy.Deny, policy.RuleAllowlist, "", dPulled, false, "", "not on the allow list"}},
		"none configured, deny":   {noneDeny, subj("dev", dUnsigned), want{policy.Deny, policy.RuleUncovered, "", dPulled, false, "", "uncovered: deny"}},
		// 4. Revocations, everywhere, exemptions notwithstanding.
		"revoked, uncovered":  {withBundle, subj("dev", dUnsigned, dRevoked), want{policy.Deny, policy.RuleRevocation, "bad-image", dRevoked, false, "", "compromised runner"}},
		"revoked, exempted":   {withBundle, subj("prod", dRevoked), want{policy.Deny, policy.RuleRevocation, "bad-image", dRevoked, false, "", "revoked"}},
		"re-wrapped config":   {withBundle, rewrapped, want{policy.Deny, policy.RuleRevocation, "bad-image", cfgRevoked, false, "", "revoked"}},
		"revoked as a config": {withBundle, configRevoked, want{policy.Deny, policy.RuleRevocation, "bad-image", dRevoked, false, "", "revoked"}},
		"revocation not yet":  {withBundle, subj("dev", dFuture), want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", "no enabled"}},
		"revoked key":         {withBundle, subj("finance", dSignedQA), want{policy.Deny, policy.RulePolicy, "two-of-three", dPulled, false, "enforce", "signed by: sec"}},
		"two of three":        {withBundle, subj("finance", dUnsigned, dSigned), want{policy.Allow, policy.RulePolicy, "two-of-three", dSigned, true, "enforce", "signed by witness ci, sec"}},
		// Coverage.
		"uncovered":               {withBundle, subj("dev", dUnsigned), want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", `namespace "dev"`}},
		"uncovered, node denies":  {&denyUncovered, subj("dev", dUnsigned), want{policy.Deny, policy.RuleUncovered, "", dPulled, false, "", "refuses uncovered"}},
		"uncovered, deny, exempt": {&denyUncovered, subj("prod", dExempt), want{policy.Allow, policy.RuleExemption, "inc-1", dExempt, false, "", "hotfix"}},
		// Exemptions: first unexpired in bundle order.
		"exempt digest":       {withBundle, subj("prod", dUnsigned, dExempt), want{policy.Allow, policy.RuleExemption, "inc-1", dExempt, false, "", "exempt until"}},
		"exempt pod":          {withBundle, debugPod, want{policy.Allow, policy.RuleExemption, "debug-pod", dPulled, false, "", "debugging"}},
		"expired exemption":   {withBundle, subj("prod", dExpired), want{policy.Deny, policy.RulePolicy, "prod", dPulled, false, "enforce", "not signed by: ci"}},
		"exemption elsewhere": {withBundle, subj("finance", dExempt), want{policy.Deny, policy.RulePolicy, "two-of-three", dPulled, false, "enforce", "needs 2 of"}},
		// Policies.
		"signed by all":      {withBundle, subj("prod", dUnsigned, dSigned), want{policy.Allow, policy.RulePolicy, "prod,watch", dSigned, true, "enforce", "trusted by policy"}},
		"unsigned":           {withBundle, subj("prod", dUnsigned), want{policy.Deny, policy.RulePolicy, "prod", dPulled, false, "enforce", "sign the image digest"}},
		"no candidates":      {withBundle, subj("prod"), want{policy.Deny, policy.RulePolicy, "prod", dPulled, false, "enforce", "no image digest with config"}},
		"audit only, fails":  {withBundle, subj("staging", dUnsigned), want{policy.Allow, policy.RulePolicy, "staging-audit", dPulled, false, "audit", "audit only"}},
		"audit only, passes": {withBundle, subj("staging", dSigned), want{policy.Allow, policy.RulePolicy, "staging-audit", dSigned, true, "enforce", "trusted by policy"}},
		"disabled policy":    {withBundle, subj("dev", dSignedCI), want{policy.Allow, policy.RuleUncovered, "", dPulled, false, "", "no enabled"}},
	} {
		t.Run(name, func(t *testing.T) {
			v := tc.d.Judge(tc.s)
			w := tc.want
			if v.Decision != w.decision || v.Kind != w.kind || v.Policy != w.policy || v.Digest != w.digest ||
				v.Trusted != w.trusted || v.Mode != w.mode || !strings.Contains(v.Reason, w.reason) {
				t.Errorf("Judge(%+v) = %+v\nwant %+v", tc.s, v, w)
			}
			if got := tc.d.Decide(context.Background(), tc.s); got.Kind != v.Kind || got.Decision != v.Decision {
				t.Errorf("Decide = %v, Judge = %v", got, v)
			}
		})
	}
}

// TestViolationsNamed: an allow that rests on a failing audit policy names it.
func TestViolationsNamed(t *testing.T) {
	d := &Decider{Node: Node{Cluster: "c1"}, Bundle: testBundle(t), Signatures: signatureDB, Now: func() time.Time { return now }}
	v := d.Judge(subj("prod", dSignedCI))
	if len(v.Violations) != 1 || v.Violations[0].Policy != "watch" {
		t.Errorf("violations = %+v, want one of policy watch", v.Violations)
	}
}

func TestWantsSignatures(t *testing.T) {
	b := testBundle(t)
	d := &Decider{Node: Node{Cluster: "c1", Allowlists: policy.Allowlists{"prod": {dListed}}}, Bundle: b, Now: func() time.Time { return now }}
	for s, want := range map[*policy.Subject]bool{
		ptr(subj("prod", dUnsigned)):  true,
		ptr(subj("prod", dListed)):    false, // allow-listed: signatures do not matter
		ptr(subj("dev", dUnsigned)):   false, // only a disabled policy
		ptr(subj("PROD", dUnsigned)):  false, // refused for its namespace
		ptr(subj("finance", dSigned)): true,
	} {
		if got := d.WantsSignatures(*s); got != want {
			t.Errorf("WantsSignatures(%s) = %v, want %v", s.Namespace, got, want)
		}
	}
	if (&Decider{Bundle: b, BundleMissing: true}).WantsSignatures(subj("prod", dUnsigned)) {
		t.Error("wants signatures without a bundle in force")
	}
}

func ptr[T any](v T) *T { return &v }

func TestValidNamespace(t *testing.T) {
	for ns, want := range map[string]bool{
		"default": true, "kube-system": true, "a": true, "0": true, "a-0": true, strings.Repeat("x", 63): true,
		"": false, "default ": false, " default": false, "DEFAULT": false, "Default": false, "default.x": false,
		"-a": false, "a-": false, "a_b": false, "a\x00": false, "ü": false, strings.Repeat("x", 64): false,
	} {
		if got := ValidNamespace(ns); got != want {
			t.Errorf("ValidNamespace(%q) = %v, want %v", ns, got, want)
		}
	}
}

// signedBy is a policy.Signatures from image digest to the fingerprints of
// the keys whose signatures over it verified.
type signedBy map[string][]string

func (s signedBy) Verified(digest string, key *policy.Key) bool {
	return slices.Contains(s[digest], key.Fingerprint)
}
