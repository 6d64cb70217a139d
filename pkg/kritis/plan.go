package kritis

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Options steer the mapping.
type Options struct {
	// Cluster the imported policies cover (policy clusters); required.
	Cluster string
	// Region of the KMS keys named by publicKeyId; empty: no KMS reference is kept.
	Region string
	// Enforce makes the policies refuse; by default they audit (would-deny only).
	Enforce bool
	// Running are the images that run today; allowlist patterns become
	// exemptions for the digests among them that they match.
	Running []Running
	// Now and ExemptFor set when those exemptions expire.
	Now       time.Time
	ExemptFor time.Duration
}

// Plan is what an import would add to a bundle, and what it cannot map.
type Plan struct {
	Witnesses  []*policy.Witness
	Policies   []*policy.SecurityPolicy
	Exemptions []*policy.Exemption
	// Lines describe every object: what it maps to, or why it does not map.
	Lines []Line
}

// Line is one entry of the plan, for people.
type Line struct {
	Mapped bool
	Object string // e.g. "AttestationAuthority demo-aa"
	Text   string
}

// nameRE is compiled when first used: its bounded repetition makes a
// program of about 200 KB that the CLI would otherwise build at every start.
var nameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
})

// Map turns kritis objects into a plan.
func Map(objs *Objects, opts Options) (*Plan, error) {
	if opts.Cluster == "" {
		return nil, errors.New("no cluster: the imported policies need the cluster they cover (--cluster)")
	}
	if opts.ExemptFor <= 0 {
		opts.ExemptFor = 14 * 24 * time.Hour
	}
	p := &Plan{}
	add := func(mapped bool, object, format string, args ...any) {
		p.Lines = append(p.Lines, Line{Mapped: mapped, Object: object, Text: fmt.Sprintf(format, args...)})
	}

	witnesses := map[string]bool{}
	for _, aa := range objs.Authorities {
		obj := "AttestationAuthority " + aa.Name
		w, err := witness(aa, opts.Region)
		if err != nil {
			add(false, obj, "not mapped: %v (%s)", err, aa.Source)
			continue
		}
		witnesses[aa.Name] = true
		p.Witnesses = append(p.Witnesses, w)
		k := w.Keys[0]
		where := "no KMS reference (pass --region to record alikms://REGION/" + aa.PublicKeyID + ")"
		if k.Ref != "" {
			where = k.Ref
		} else if aa.PublicKeyID == "" {
			where = "no publicKeyId: key not linked to KMS"
		}
		add(true, obj, "witness %s: key %s %s, %s", w.Name, k.Fingerprint, k.KeySpec, where)
	}

	mode := policy.Audit
	if opts.Enforce {
		mode = policy.Enforce
	}
	covered := map[string]bool{} // namespaces an imported policy covers
	for _, gap := range objs.Policies {
		obj := "GenericAttestationPolicy " + gap.Namespace + "/" + gap.Name
		name := gap.Namespace + "." + gap.Name
		var missing []string
		for _, a := range gap.Authorities {
			if !witnesses[a] {
				missing = append(missing, a)
			}
		}
		switch {
		case len(gap.Authorities) == 0:
			add(false, obj, "not mapped: it names no attestationAuthorityNames (%s)", gap.Source)
			continue
		case len(missing) > 0:
			add(false, obj, "not mapped: AttestationAuthority %s is not among the imported ones: import it too, or namespace %s stays unprotected (%s)",
				strings.Join(missing, ", "), gap.Namespace, gap.Source)
			continue
		case !nameRE().MatchString(name):
			add(false, obj, "not mapped: %q is not a valid policy name (%s)", name, gap.Source)
			continue
		}
		sp := &policy.SecurityPolicy{
			Name: name, Witnesses: slices.Clone(gap.Authorities), Threshold: len(gap.Authorities),
			Clusters: []string{opts.Cluster}, Namespaces: []string{gap.Namespace},
			Enabled: true, Mode: mode,
			Note: "imported from kritis GenericAttestationPolicy " + gap.Namespace + "/" + gap.Name,
		}
		covered[gap.Namespace] = true
		p.Policies = append(p.Policies, sp)
		add(true, obj, "policy %s: namespace %s on cluster %s, %s, all of [%s] (%d of %d)",
			name, gap.Namespace, opts.Cluster, mode, strings.Join(sp.Witnesses, ", "), sp.Threshold, len(sp.Witnesses))
	}

	p.exemptions(objs.Patterns, covered, opts, add)
	for _, ig := range objs.Ignored {
		add(false, ig, "ignored: not a kritis object nri-csig maps")
	}
	return p, nil
}

func witness(aa AttestationAuthority, region string) (*policy.Witness, error) {
	if !nameRE().MatchString(aa.Name) {
		return nil, fmt.Errorf("%q is not a valid witness name", aa.Name)
	}
	if aa.KeyErr != nil {
		return nil, fmt.Errorf("spec.publicKeyData: %w", aa.KeyErr)
	}
	pub, spec, err := policy.ParsePublicKeyPEM(aa.PublicKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("spec.publicKeyData: %w", err)
	}
	pemText, err := policy.EncodePublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	fp, err := policy.Fingerprint(pub)
	if err != nil {
		return nil, err
	}
	alg := policy.RSAPKCS1SHA256 // what `nri-csig sign` uses by default
	if spec == "EC_P256" {
		alg = policy.ECDSASHA256
	}
	k := &policy.Key{PublicKey: pub, PublicKeyPEM: pemText, Fingerprint: fp, Algorithm: alg, KeySpec: spec, Provider: "local"}
	if aa.PublicKeyID != "" && region != "" {
		k.Provider, k.Region, k.KeyID = "alikms", region, aa.PublicKeyID
		k.Ref = "alikms://" + region + "/" + aa.PublicKeyID
	}
	desc := "kritis AttestationAuthority " + aa.Name
	if aa.NoteReference != "" {
		desc += " (noteReference " + aa.NoteReference + ")"
	}
	return &policy.Witness{Name: aa.Name, Description: desc, Keys: []*policy.Key{k}}, nil
}

// exemptions reports every pattern and, for the running digests it matches in
// namespaces an imported policy covers, plans an expiring exemption.
func (p *Plan) exemptions(patterns []Pattern, covered map[string]bool, opts Options, add func(bool, string, string, ...any)) {
	expires := opts.Now.Add(opts.ExemptFor).UTC().Truncate(time.Second)
	var coveredList []string
	for ns := range covered {
		coveredList = append(coveredList, ns)
	}
	slices.Sort(coveredList)
	seen := map[string]bool{}
	for _, pat := range patterns {
		obj := fmt.Sprintf("AdmissionAllowlist %s pattern %q", pat.Allowlist, pat.NamePattern)
		if pat.Namespace != "" {
			obj += " (namespace " + pat.Namespace + ")"
		}
		const why = "not mapped: a name pattern trusts whatever is pushed under that name; nri-csig trusts digests only"
		if len(opts.Running) == 0 {
			add(false, obj, "%s: sign those images, or pass --running-digests to exempt the digests that run today", why)
			continue
		}
		var n int
		for _, r := range opts.Running {
			if !Match(pat.NamePattern, r.Image) {
				continue
			}
			var nss []string
			switch {
			case r.Namespace != "" && (pat.Namespace == "" || pat.Namespace == r.Namespace):
				nss = []string{r.Namespace}
			case r.Namespace == "" && pat.Namespace != "":
				nss = []string{pat.Namespace}
			case r.Namespace == "":
				nss = coveredList
			}
			for _, ns := range nss {
				key := ns + "/" + r.Digest
				if !covered[ns] || seen[key] {
					continue
				}
				seen[key] = true
				n++
				p.Exemptions = append(p.Exemptions, &policy.Exemption{
					Name: exemptionName(ns, r.Digest), Namespace: ns, ImageDigest: r.Digest, Expires: expires,
					Reason: fmt.Sprintf("kritis allowlist %s pattern %q matched %s when imported; sign it before this expires", pat.Allowlist, pat.NamePattern, r.Image),
				})
			}
		}
		if n == 0 {
			add(false, obj, "%s; no running image it matches runs in a namespace an imported policy covers: nothing exempted", why)
			continue
		}
		add(false, obj, "%s; %d running digests exempted until %s instead: sign them before then", why, n, expires.Format(time.RFC3339))
	}
}

func exemptionName(ns, digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	name := "kritis-" + ns + "-" + h
	if !nameRE().MatchString(name) {
		sum := sha256.Sum256([]byte(ns + digest))
		name = "kritis-" + hex.EncodeToString(sum[:8])
	}
	return name
}

// Apply adds the plan to b: witnesses already there with the same key are
// kept, anything else that clashes is an error naming it.
func (p *Plan) Apply(b *policy.Bundle) error {
	for _, w := range p.Witnesses {
		if old := b.Witness(w.Name); old != nil {
			if !slices.ContainsFunc(old.Keys, func(k *policy.Key) bool { return k.Fingerprint == w.Keys[0].Fingerprint }) {
				return fmt.Errorf("witness %q is already in the bundle with other keys: rename it there, or add the key with 'nri-csig witness add-key'", w.Name)
			}
			continue
		}
		if err := b.AddWitness(w); err != nil {
			return err
		}
	}
	for _, sp := range p.Policies {
		if b.Policy(sp.Name) != nil {
			return fmt.Errorf("policy %q is already in the bundle: delete it there to import it again", sp.Name)
		}
		if err := b.AddPolicy(sp); err != nil {
			return err
		}
	}
	for _, e := range p.Exemptions {
		if slices.ContainsFunc(b.Exemptions, func(o *policy.Exemption) bool { return o.Name == e.Name }) {
			continue
		}
		if err := b.AddExemption(e); err != nil {
			return err
		}
	}
	return nil
}
