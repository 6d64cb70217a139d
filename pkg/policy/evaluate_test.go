package policy

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	before = time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC) // before the revocation and the exemption's expiry
	after  = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) // after the revocation, before the expiry
	later  = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)  // after both
)

func subject(ns string, digests ...string) Subject {
	return Subject{Namespace: ns, Pod: "web-1", ImageName: "registry.example/app:1", ConfigDigest: "sha256:" + strings.Repeat("f", 64), ImageDigests: digests}
}

// enable switches a policy on, optionally changing its mode.
func enable(t *testing.T, b *Bundle, name string, mode Mode) {
	t.Helper()
	if err := b.SetPolicyEnabled(name, true); err != nil {
		t.Fatal(err)
	}
	b.Policy(name).Mode = mode
}

func TestDecide(t *testing.T) {
	testKeys(t)
	fp := func(i int) string { return ecFP(t, i) }
	rsaFP, _ := Fingerprint(&testRSAKey(t).PublicKey)
	tests := map[string]struct {
		edit      func(*testing.T, *Bundle)
		cluster   string
		subject   Subject
		signed    SignedBy
		now       time.Time
		uncovered Uncovered
		decision  Decision
		rule      string
		reason    string // substring
		violation string // policy expected in Violations
		witnesses string // expected Verdict.Witnesses, when set
	}{
		"uncovered namespace runs": {
			cluster: "c1", subject: subject("other", dA), now: before,
			decision: Allow, rule: "uncovered", reason: `no enabled security policy covers namespace "other"`,
		},
		"other cluster is not covered": {
			cluster: "c2", subject: subject("default", dA), now: before,
			decision: Allow, rule: "uncovered",
		},
		"uncovered deny": {
			cluster: "c1", subject: subject("other", dA), now: before, uncovered: UncoveredDeny,
			decision: Deny, rule: "uncovered", reason: "refuses uncovered namespaces",
		},
		"all witnesses signed": {
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {fp(0), fp(2)}},
			decision: Allow, rule: "policy/prod", reason: "signed by witness release, qa",
		},
		"signatures on different candidate digests count": {
			cluster: "c1", subject: subject("default", dA, dC), now: before,
			signed:   SignedBy{dA: {fp(0)}, dC: {fp(2)}},
			decision: Allow, rule: "policy/prod",
		},
		"a missing witness refuses": {
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {fp(0)}},
			decision: Deny, rule: "policy/prod", reason: "not signed by: qa (keys " + fp(2),
		},
		"no signature at all": {
			cluster: "c1", subject: subject("payments", dA), now: before,
			decision: Deny, rule: "policy/prod", reason: "signed by: none",
		},
		"signature on another digest does not count": {
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dC: {fp(0), fp(2)}},
			decision: Deny, rule: "policy/prod",
		},
		"no image digest found": {
			cluster: "c1", subject: subject("default"), now: before,
			decision: Deny, rule: "policy/prod", reason: "no image digest with config",
		},
		"rotated key counts": {
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {fp(1), fp(2)}},
			decision: Allow, rule: "policy/prod",
		},
		"revoked key no longer counts": {
			cluster: "c1", subject: subject("default", dA), now: after,
			signed:   SignedBy{dA: {fp(1), fp(2)}},
			decision: Deny, rule: "policy/prod", reason: "not signed by: release",
		},
		"revoked digest refused even uncovered": {
			cluster: "c1", subject: subject("other", dA, dB), now: after,
			decision: Deny, rule: "revocation/leaked", reason: "is revoked since 2026-11-20T00:00:00Z (key leaked)",
		},
		"revoked digest before effective time": {
			cluster: "c1", subject: subject("other", dB), now: before,
			decision: Allow, rule: "uncovered",
		},
		"revocation beats exemption": {
			edit:    func(t *testing.T, b *Bundle) { b.Exemptions[0].ImageDigest = dB },
			cluster: "c1", subject: subject("payments", dB), now: after,
			decision: Deny, rule: "revocation/leaked",
		},
		"exemption lets an unsigned image run": {
			cluster: "c1", subject: subject("payments", dC), now: after,
			decision: Allow, rule: "exemption/hotfix", reason: "INC-42 hotfix",
		},
		"expired exemption is ignored": {
			cluster: "c1", subject: subject("payments", dC), now: later,
			decision: Deny, rule: "policy/prod",
		},
		"exemption is per namespace": {
			cluster: "c1", subject: subject("default", dC), now: after,
			decision: Deny, rule: "policy/prod",
		},
		"pod exemption, also under uncovered deny": {
			edit: func(t *testing.T, b *Bundle) {
				b.Exemptions[0].ImageDigest, b.Exemptions[0].Pod, b.Exemptions[0].Namespace = "", "web-1", "other"
			},
			cluster: "c1", subject: subject("other", dA), now: after, uncovered: UncoveredDeny,
			decision: Allow, rule: "exemption/hotfix",
		},
		"disabled policy does nothing": {
			cluster: "c9", subject: subject("kube-system", dA), now: before,
			decision: Allow, rule: "uncovered",
		},
		"audit mode lets the container run and reports": {
			edit:    func(t *testing.T, b *Bundle) { enable(t, b, "anywhere", Audit) },
			cluster: "c9", subject: subject("kube-system", dA), now: before,
			decision: Allow, rule: "policy/anywhere", reason: "audit only", violation: "anywhere",
		},
		"threshold one of two": {
			edit:    func(t *testing.T, b *Bundle) { enable(t, b, "anywhere", Enforce) },
			cluster: "c9", subject: subject("kube-system", dA), now: before,
			signed:   SignedBy{dA: {rsaFP}},
			decision: Allow, rule: "policy/anywhere", reason: "signed by witness legacy",
		},
		"threshold not met": {
			edit:    func(t *testing.T, b *Bundle) { enable(t, b, "anywhere", Enforce) },
			cluster: "c9", subject: subject("kube-system", dA), now: before,
			decision: Deny, rule: "policy/anywhere", reason: "needs 1 of witnesses release, legacy",
		},
		"every covering policy must pass": {
			edit:    func(t *testing.T, b *Bundle) { enable(t, b, "anywhere", Enforce) },
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {rsaFP}},
			decision: Deny, rule: "policy/prod",
		},
		"every covering policy passes": {
			edit:    func(t *testing.T, b *Bundle) { enable(t, b, "anywhere", Enforce) },
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {fp(0), fp(2)}},
			decision: Allow, rule: "policy/prod,anywhere", witnesses: "release,qa",
		},
		"audit failure beside a passing enforce policy": {
			edit: func(t *testing.T, b *Bundle) {
				enable(t, b, "anywhere", Audit)
				b.Policy("anywhere").Witnesses = []string{"legacy"}
			},
			cluster: "c1", subject: subject("default", dA), now: before,
			signed:   SignedBy{dA: {fp(0), fp(2)}},
			decision: Allow, rule: "policy/prod", violation: "anywhere",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := mustParse(t, validBundle)
			if tc.edit != nil {
				tc.edit(t, b)
			}
			var sigs Signatures
			if tc.signed != nil {
				sigs = tc.signed
			}
			res := b.Decide(Request{Cluster: tc.cluster, Subject: tc.subject, Signatures: sigs, Now: tc.now, Uncovered: tc.uncovered})
			v := res.Verdict
			if v.Decision != tc.decision || v.RuleName() != tc.rule || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("Decide = %v\nwant %s by %s with reason containing %q", v, tc.decision, tc.rule, tc.reason)
			}
			var viol, vviol []string
			for _, pr := range res.Violations {
				viol = append(viol, pr.Policy)
			}
			for _, vv := range v.Violations {
				vviol = append(vviol, vv.Policy)
			}
			if got := strings.Join(viol, ","); got != tc.violation || strings.Join(vviol, ",") != got {
				t.Errorf("Violations = %q, Verdict.Violations = %q; want %q", got, vviol, tc.violation)
			}
			// Trusted: allowed by signatures alone, with no audit-mode failure.
			wantTrusted := v.Allowed() && v.Kind == RulePolicy && tc.violation == ""
			if v.Trusted != wantTrusted {
				t.Errorf("Trusted = %v; want %v", v.Trusted, wantTrusted)
			}
			if tc.witnesses != "" && strings.Join(v.Witnesses, ",") != tc.witnesses {
				t.Errorf("Witnesses = %v; want %s", v.Witnesses, tc.witnesses)
			}
		})
	}
}

func TestCovering(t *testing.T) {
	b := mustParse(t, validBundle)
	names := func(ps []*SecurityPolicy) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(b.Covering("c1", "default")); got != "prod" {
		t.Errorf("Covering(c1, default) = %q; want prod", got)
	}
	if got := names(b.Covering("c1", "other")); got != "" {
		t.Errorf("Covering(c1, other) = %q; want none (anywhere is disabled)", got)
	}
	enable(t, b, "anywhere", Audit)
	if got := names(b.Covering("c1", "payments")); got != "prod,anywhere" {
		t.Errorf("Covering(c1, payments) = %q; want prod,anywhere in bundle order", got)
	}
	// A policy reachable through both a name and the wildcard appears once.
	b.Policy("prod").Clusters = []string{"c1", "*"}
	b.reindex()
	if got := names(b.Covering("c1", "default")); got != "prod,anywhere" {
		t.Errorf("Covering(c1, default) = %q; want prod,anywhere once each", got)
	}
	if err := b.SetPolicyEnabled("prod", false); err != nil {
		t.Fatal(err)
	}
	if got := names(b.Covering("c1", "default")); got != "anywhere" {
		t.Errorf("after disabling prod, Evaluate = %q; want anywhere", got)
	}
}

func TestExampleBundle(t *testing.T) {
	data, err := os.ReadFile("../../examples/policy-bundle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle("examples/policy-bundle.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	const hotfix = "sha256:3f0e1b6c5d4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
	const revoked = "sha256:0d1c2b3a49586776a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e"
	for _, tc := range []struct {
		ns, digest string
		now        time.Time
		want       string
	}{
		{"payments", hotfix, after, "allow by exemption/inc-4711-hotfix"},
		{"payments", hotfix, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "deny by policy/production"},
		{"kube-system", revoked, after, "deny by revocation/ci-runner-compromise"},
		{"kube-system", dA, after, "allow by uncovered"},
	} {
		v := b.Decide(Request{Cluster: "prod-1", Subject: subject(tc.ns, tc.digest), Now: tc.now}).Verdict
		if got := string(v.Decision) + " by " + v.RuleName(); got != tc.want {
			t.Errorf("Decide(%s, %s, %s) = %s; want %s", tc.ns, tc.digest, tc.now, got, tc.want)
		}
	}
}

func TestDecideZeroNowIsNow(t *testing.T) {
	b := mustParse(t, validBundle)
	b.Revocations[0].Effective = time.Now().Add(-time.Hour)
	b.Exemptions[0].Expires = time.Now().Add(-time.Hour)
	// A zero Now must not void the revocation nor revive the expired exemption.
	if v := b.Decide(Request{Cluster: "c1", Subject: subject("other", dB)}).Verdict; v.RuleName() != "revocation/leaked" {
		t.Errorf("Decide(revoked digest) with zero Now = %v; want the revocation applied", v)
	}
	if v := b.Decide(Request{Cluster: "c1", Subject: subject("payments", dC)}).Verdict; v.RuleName() != "policy/prod" {
		t.Errorf("Decide(exempt digest) with zero Now = %v; want the expired exemption ignored", v)
	}
}

func TestKeysFor(t *testing.T) {
	b := mustParse(t, validBundle)
	fps := func(ks []*Key) string {
		var s []string
		for _, k := range ks {
			s = append(s, k.Witness+"="+k.Fingerprint[:15])
		}
		return strings.Join(s, ",")
	}
	want := "release=" + ecFP(t, 0)[:15] + ",release=" + ecFP(t, 1)[:15] + ",qa=" + ecFP(t, 2)[:15]
	if got := fps(b.KeysFor("c1", "default", before)); got != want {
		t.Errorf("KeysFor(before the revocation) = %s; want %s", got, want)
	}
	want = "release=" + ecFP(t, 0)[:15] + ",qa=" + ecFP(t, 2)[:15]
	if got := fps(b.KeysFor("c1", "default", after)); got != want {
		t.Errorf("KeysFor(after the revocation) = %s; want %s", got, want)
	}
	if got := b.KeysFor("c1", "other", after); len(got) != 0 {
		t.Errorf("KeysFor(uncovered) = %v; want none", got)
	}
}

// SignedBy is a Signatures backed by a map from image digest to the
// fingerprints of the keys whose signatures over it verified.
type SignedBy map[string][]string

// Verified implements Signatures.
func (s SignedBy) Verified(digest string, key *Key) bool {
	return slices.Contains(s[digest], key.Fingerprint)
}
