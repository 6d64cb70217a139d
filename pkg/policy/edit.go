package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nri-csig/nri-csig/internal/registry/check"
)

// The methods in this file edit a bundle the way the console would, for the
// CLI. A bundle a Store hands out must never be edited: edit one you parsed
// yourself, then Marshal it and parse the result again, which validates it.

// NewBundle returns an empty bundle at serial 0; the first edit makes it 1.
func NewBundle(name string) *Bundle {
	return &Bundle{Name: name}
}

// Touch raises the serial by one, so nodes accept the edited bundle as newer.
func (b *Bundle) Touch() { b.Serial++ }

// AddWitness adds a witness; its name must be new.
func (b *Bundle) AddWitness(w *Witness) error {
	if b.findWitness(w.Name) >= 0 {
		return fmt.Errorf("witness %q already exists; delete it first or choose another name", w.Name)
	}
	if w.Kind == "" {
		w.Kind = WitnessKeys
	}
	if len(w.Keys) == 0 {
		return fmt.Errorf("witness %q has no key; give one with --key", w.Name)
	}
	if w.SignatureRepository != "" {
		if err := check.Repository(w.SignatureRepository); err != nil {
			return fmt.Errorf("witness %q: signature repository: %w", w.Name, err)
		}
	}
	for _, k := range w.Keys {
		k.Witness = w.Name
		if k.Kind == "" {
			k.Kind = w.Kind
		}
		for _, o := range b.Witnesses {
			for _, ok := range o.Keys {
				if ok.Fingerprint == k.Fingerprint {
					return fmt.Errorf("key %s is already a key of witness %q; a key may belong to one witness only", k.Fingerprint, o.Name)
				}
			}
		}
	}
	b.Witnesses = append(b.Witnesses, w)
	b.reindex()
	return nil
}

// AddKey adds a key to an existing witness, for rotation.
func (b *Bundle) AddKey(witness string, k *Key) error {
	i := b.findWitness(witness)
	if i < 0 {
		return fmt.Errorf("witness %q not found; create it with 'nri-csig witness create'", witness)
	}
	if kind := b.Witnesses[i].Kind; kind != WitnessKeys && kind != "" {
		return fmt.Errorf("witness %q is of kind %s: it trusts certificates, not keys; rotate its trust material by creating the witness again", witness, kind)
	}
	if o := b.keyByFP[k.Fingerprint]; o != nil {
		return fmt.Errorf("key %s is already a key of witness %q; a key may belong to one witness only", k.Fingerprint, o.Witness)
	}
	k.Witness, k.Kind = witness, WitnessKeys
	b.Witnesses[i].Keys = append(b.Witnesses[i].Keys, k)
	b.reindex()
	return nil
}

// DeleteWitness removes a witness, refusing while a policy names it.
func (b *Bundle) DeleteWitness(name string) error {
	i := b.findWitness(name)
	if i < 0 {
		return fmt.Errorf("witness %q not found; 'nri-csig witness list' shows the witnesses", name)
	}
	if users := b.PoliciesUsing(name); len(users) > 0 {
		return fmt.Errorf("witness %q is used by security policies %s; remove it from them or delete them first",
			name, strings.Join(users, ", "))
	}
	b.Witnesses = slices.Delete(b.Witnesses, i, i+1)
	b.reindex()
	return nil
}

// AddPolicy adds a security policy; its name must be new and its witnesses
// must exist.
func (b *Bundle) AddPolicy(p *SecurityPolicy) error {
	if b.findPolicy(p.Name) >= 0 {
		return fmt.Errorf("security policy %q already exists; delete it first or choose another name", p.Name)
	}
	for _, w := range p.Witnesses {
		if b.findWitness(w) < 0 {
			return fmt.Errorf("witness %q does not exist; create it with 'nri-csig witness create' first", w)
		}
	}
	b.Policies = append(b.Policies, p)
	b.reindex()
	return nil
}

// SetPolicyEnabled switches a policy on or off.
func (b *Bundle) SetPolicyEnabled(name string, enabled bool) error {
	i := b.findPolicy(name)
	if i < 0 {
		return fmt.Errorf("security policy %q not found; 'nri-csig policy list' shows the policies", name)
	}
	b.Policies[i].Enabled = enabled
	b.reindex()
	return nil
}

// DeletePolicy removes a security policy.
func (b *Bundle) DeletePolicy(name string) error {
	i := b.findPolicy(name)
	if i < 0 {
		return fmt.Errorf("security policy %q not found; 'nri-csig policy list' shows the policies", name)
	}
	b.Policies = slices.Delete(b.Policies, i, i+1)
	b.reindex()
	return nil
}

func (b *Bundle) findWitness(name string) int {
	return slices.IndexFunc(b.Witnesses, func(w *Witness) bool { return w.Name == name })
}

func (b *Bundle) findPolicy(name string) int {
	return slices.IndexFunc(b.Policies, func(p *SecurityPolicy) bool { return p.Name == name })
}

// reindex rebuilds the lookup tables after an edit.
func (b *Bundle) reindex() {
	b.witnessByName = map[string]*Witness{}
	b.keyByFP = map[string]*Key{}
	for _, w := range b.Witnesses {
		b.witnessByName[w.Name] = w
		for _, k := range w.Keys {
			b.keyByFP[k.Fingerprint] = k
		}
	}
	b.policyByName = map[string]*SecurityPolicy{}
	for _, p := range b.Policies {
		b.policyByName[p.Name] = p
	}
	b.index = buildIndex(b.Policies)
	b.ruleIx.Store(nil)
}

// AddExemption adds an exemption; its name must be new.
func (b *Bundle) AddExemption(e *Exemption) error {
	if slices.ContainsFunc(b.Exemptions, func(o *Exemption) bool { return o.Name == e.Name }) {
		return fmt.Errorf("exemption %q already exists; delete it first or choose another name", e.Name)
	}
	b.Exemptions = append(b.Exemptions, e)
	b.ruleIx.Store(nil)
	return nil
}

// DeleteExemption removes an exemption.
func (b *Bundle) DeleteExemption(name string) error {
	i := slices.IndexFunc(b.Exemptions, func(e *Exemption) bool { return e.Name == name })
	if i < 0 {
		return fmt.Errorf("exemption %q not found; 'nri-csig exemption list' shows the exemptions", name)
	}
	b.Exemptions = slices.Delete(b.Exemptions, i, i+1)
	b.ruleIx.Store(nil)
	return nil
}

// AddRevocation adds a revocation; its name must be new.
func (b *Bundle) AddRevocation(r *Revocation) error {
	if slices.ContainsFunc(b.Revocations, func(o *Revocation) bool { return o.Name == r.Name }) {
		return fmt.Errorf("revocation %q already exists; choose another name", r.Name)
	}
	b.Revocations = append(b.Revocations, r)
	b.ruleIx.Store(nil)
	return nil
}

// DeleteRevocation removes a revocation: what it revoked is trusted again.
func (b *Bundle) DeleteRevocation(name string) error {
	i := slices.IndexFunc(b.Revocations, func(r *Revocation) bool { return r.Name == name })
	if i < 0 {
		return fmt.Errorf("revocation %q not found; 'nri-csig revocation list' shows the revocations", name)
	}
	b.Revocations = slices.Delete(b.Revocations, i, i+1)
	b.ruleIx.Store(nil)
	return nil
}

// RemoveKey removes a key from a witness, refusing to remove its last one.
func (b *Bundle) RemoveKey(witness, fingerprint string) error {
	i := b.findWitness(witness)
	if i < 0 {
		return fmt.Errorf("witness %q not found; 'nri-csig witness list' shows the witnesses", witness)
	}
	w := b.Witnesses[i]
	j := slices.IndexFunc(w.Keys, func(k *Key) bool { return k.Fingerprint == fingerprint })
	if j < 0 {
		return fmt.Errorf("witness %q has no key %s; 'nri-csig witness show %s' lists its keys", witness, fingerprint, witness)
	}
	if len(w.Keys) == 1 {
		return fmt.Errorf("key %s is the last key of witness %q; add its successor first ('nri-csig witness add-key') or delete the witness", fingerprint, witness)
	}
	w.Keys = slices.Delete(w.Keys, j, j+1)
	b.reindex()
	return nil
}
