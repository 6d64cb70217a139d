package policy

import (
	"bytes"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// The document shapes Marshal writes; ParseBundle reads the same fields.
type (
	docOut[T any] struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   metaOut `yaml:"metadata"`
		Spec       T       `yaml:"spec"`
	}
	metaOut struct {
		Name string `yaml:"name"`
	}
	bundleSpecOut struct {
		Serial      uint64 `yaml:"serial"`
		Description string `yaml:"description,omitempty"`
		NotBefore   string `yaml:"notBefore,omitempty"`
		Expires     string `yaml:"expires,omitempty"`
	}
	witnessSpecOut struct {
		Description         string   `yaml:"description,omitempty"`
		Kind                string   `yaml:"kind,omitempty"`
		SignatureRepository string   `yaml:"signatureRepository,omitempty"`
		Keys                []keyOut `yaml:"keys,omitempty"`
		X509                any      `yaml:"x509,omitempty"`
		Sigstore            any      `yaml:"sigstore,omitempty"`
	}
	keyOut struct {
		Fingerprint  string `yaml:"fingerprint"`
		Algorithm    string `yaml:"algorithm"`
		KeySpec      string `yaml:"keySpec,omitempty"`
		Provider     string `yaml:"provider,omitempty"`
		Ref          string `yaml:"ref,omitempty"`
		Region       string `yaml:"region,omitempty"`
		KeyID        string `yaml:"keyId,omitempty"`
		KeyVersionID string `yaml:"keyVersionId,omitempty"`
		PublicKey    string `yaml:"publicKey"`
	}
	policySpecOut struct {
		Witnesses  []string `yaml:"witnesses,flow"`
		Threshold  int      `yaml:"threshold,omitempty"`
		Clusters   []string `yaml:"clusters,flow"`
		Namespaces []string `yaml:"namespaces,flow"`
		Enabled    bool     `yaml:"enabled"`
		Mode       string   `yaml:"mode"`
		Note       string   `yaml:"note,omitempty"`
	}
	exemptionSpecOut struct {
		Namespace   string `yaml:"namespace"`
		ImageDigest string `yaml:"imageDigest,omitempty"`
		Pod         string `yaml:"pod,omitempty"`
		Expires     string `yaml:"expires"`
		Reason      string `yaml:"reason"`
	}
	revocationSpecOut struct {
		Keys          []string `yaml:"keys,omitempty"`
		ImageDigests  []string `yaml:"imageDigests,omitempty"`
		ConfigDigests []string `yaml:"configDigests,omitempty"`
		Effective     string   `yaml:"effective"`
		Reason        string   `yaml:"reason,omitempty"`
	}
)

func doc[T any](kind, name string, spec T) docOut[T] {
	return docOut[T]{APIVersion: APIVersion, Kind: kind, Metadata: metaOut{Name: name}, Spec: spec}
}

// Marshal renders the bundle in its canonical form: the PolicyBundle document
// first, then witnesses, policies, exemptions and revocations in bundle
// order, each field in a fixed order. ParseBundle(Marshal(b)) yields an
// equivalent bundle. This is what the CLI writes and signs.
func (b *Bundle) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	put := func(v any) error { return enc.Encode(v) }
	if err := put(doc(KindBundle, b.Name, bundleSpecOut{Serial: b.Serial, Description: b.Description,
		NotBefore: rfc3339(b.NotBefore), Expires: rfc3339(b.Expires)})); err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	for _, w := range b.Witnesses {
		ws := witnessSpecOut{Description: w.Description, SignatureRepository: w.SignatureRepository}
		switch w.Kind {
		case WitnessX509:
			ws.Kind, ws.X509 = string(w.Kind), x509Out(w.X509)
		case WitnessSigstore:
			ws.Kind, ws.Sigstore = string(w.Kind), sigstoreOut(w.Sigstore)
		}
		for _, k := range w.Keys {
			if k.Kind != WitnessKeys && k.Kind != "" {
				continue // the synthetic key of a certificate witness
			}
			ws.Keys = append(ws.Keys, keyOut{Fingerprint: k.Fingerprint, Algorithm: string(k.Algorithm), KeySpec: k.KeySpec,
				Provider: k.Provider, Ref: k.Ref, Region: k.Region, KeyID: k.KeyID, KeyVersionID: k.KeyVersionID,
				PublicKey: k.PublicKeyPEM})
		}
		if err := put(doc(KindWitness, w.Name, ws)); err != nil {
			return nil, fmt.Errorf("marshal witness %q: %w", w.Name, err)
		}
	}
	for _, p := range b.Policies {
		ps := policySpecOut{Witnesses: p.Witnesses, Clusters: p.Clusters, Namespaces: p.Namespaces,
			Enabled: p.Enabled, Mode: string(p.Mode), Note: p.Note}
		if p.Threshold != len(p.Witnesses) {
			ps.Threshold = p.Threshold
		}
		if ps.Mode == "" {
			ps.Mode = string(Enforce)
		}
		if err := put(doc(KindSecurityPolicy, p.Name, ps)); err != nil {
			return nil, fmt.Errorf("marshal policy %q: %w", p.Name, err)
		}
	}
	for _, e := range b.Exemptions {
		if err := put(doc(KindExemption, e.Name, exemptionSpecOut{Namespace: e.Namespace, ImageDigest: e.ImageDigest,
			Pod: e.Pod, Expires: e.Expires.UTC().Format(time.RFC3339), Reason: e.Reason})); err != nil {
			return nil, fmt.Errorf("marshal exemption %q: %w", e.Name, err)
		}
	}
	for _, r := range b.Revocations {
		if err := put(doc(KindRevocation, r.Name, revocationSpecOut{Keys: r.Keys, ImageDigests: r.ImageDigests, ConfigDigests: r.ConfigDigests,
			Effective: r.Effective.UTC().Format(time.RFC3339), Reason: r.Reason})); err != nil {
			return nil, fmt.Errorf("marshal revocation %q: %w", r.Name, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// rfc3339 formats t for the bundle header; the zero time (no bound) is left out.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
