package policy

import (
	"crypto"
	"sync/atomic"
	"time"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// APIVersion is the apiVersion of every document in a policy bundle.
const APIVersion = "nri-csig.io/v1alpha1"

// Kinds of the documents a policy bundle is made of.
const (
	KindBundle         = "PolicyBundle"
	KindWitness        = "Witness"
	KindSecurityPolicy = "SecurityPolicy"
	KindExemption      = "Exemption"
	KindRevocation     = "Revocation"
)

// Wildcard in a policy's clusters or namespaces covers every cluster or
// namespace. It is the only pattern: names are otherwise matched exactly, so
// that what a policy covers can be read off the bundle.
const Wildcard = "*"

// Mode says what a failing policy does.
type Mode string

const (
	// Enforce refuses a container that fails the policy. It is the default.
	Enforce Mode = "enforce"
	// Audit lets the container run and records the violation.
	Audit Mode = "audit"
)

// Algorithm names a signature algorithm, spelled as pkg/keys and Alibaba
// Cloud KMS spell it.
type Algorithm = keys.Algorithm

// Signature algorithms a witness key may use: all over SHA-256.
const (
	RSAPKCS1SHA256 = keys.RSAPKCS1SHA256
	RSAPSSSHA256   = keys.RSAPSSSHA256
	ECDSASHA256    = keys.ECDSASHA256
)

// Bundle is a parsed, validated policy bundle: the witnesses, security
// policies, exemptions and revocations a node enforces, at one serial.
// A Bundle is immutable once parsed; share it freely between goroutines.
type Bundle struct {
	// Name is the bundle document's metadata.name.
	Name string
	// Serial orders bundles: a node never replaces a bundle by one with a
	// lower serial (no rollback), nor by different content at the same serial.
	Serial uint64
	// Description is free text from the bundle document.
	Description string
	// NotBefore and Expires bound when a node accepts the bundle (zero: no
	// bound). They are part of the signed bytes: a node never puts in force
	// a bundle past Expires, so a replayed old bundle is refused by time, not
	// only by serial. See Freshness.
	NotBefore time.Time
	Expires   time.Time

	Witnesses   []*Witness
	Policies    []*SecurityPolicy
	Exemptions  []*Exemption
	Revocations []*Revocation

	witnessByName map[string]*Witness
	policyByName  map[string]*SecurityPolicy
	keyByFP       map[string]*Key
	index         coverIndex
	ruleIx        atomic.Pointer[ruleIndex] // exemptions and revocations by digest; see rules()
}

// Witness is a named trust anchor: what must have signed an image digest for
// "this witness approved it". Kind says how it is expressed:
//
//   - WitnessKeys: public keys; several allow rotation, and a signature by
//     any one of them satisfies the witness.
//   - WitnessX509: a trust store of CA certificates and trusted identities,
//     as the Notary Project (notation) defines them.
//   - WitnessSigstore: a Sigstore trusted root and certificate identities
//     (keyless signing).
//
// A witness of a certificate kind has exactly one Key, synthetic: its
// Fingerprint is the trust material's ID ("x509:sha256:…"), so thresholds,
// revocations and messages treat every kind alike.
type Witness struct {
	Name        string
	Description string
	Kind        WitnessKind
	Keys        []*Key
	X509        *X509Trust     // kind x509 only
	Sigstore    *SigstoreTrust // kind sigstore only
	// SignatureRepository, when set, is the repository
	// ("registry.example.com/team/signatures") where this witness's
	// signatures are stored instead of the image's own repository, as
	// cosign's COSIGN_REPOSITORY places them. It says where to look, not
	// whom to trust: signatures found there count only through the keys.
	SignatureRepository string
}

// WitnessKind is how a witness is expressed; see Witness.
type WitnessKind string

// The witness kinds.
const (
	WitnessKeys     WitnessKind = "keys"
	WitnessX509     WitnessKind = "x509"
	WitnessSigstore WitnessKind = "sigstore"
)

// Key is one public key of a witness, with the KMS key it came from (for
// people; nodes verify offline with PublicKey alone).
type Key struct {
	// Witness is the name of the witness the key belongs to.
	Witness string
	// Kind is the witness's kind. For WitnessX509 and WitnessSigstore the
	// key is the witness's trust material (X509 or Sigstore), PublicKey is
	// nil and Fingerprint is the trust ID.
	Kind     WitnessKind
	X509     *X509Trust
	Sigstore *SigstoreTrust
	// PublicKeyPEM is the PKIX "PUBLIC KEY" PEM block as written in the bundle.
	PublicKeyPEM string
	PublicKey    crypto.PublicKey
	// Fingerprint is "sha256:<hex>" of the DER SubjectPublicKeyInfo.
	Fingerprint string
	Algorithm   Algorithm
	// KeySpec is RSA_2048, RSA_3072, RSA_4096 or EC_P256, derived from the key.
	KeySpec string

	// Where the private half lives; informative.
	Provider     string
	Ref          string
	Region       string
	KeyID        string
	KeyVersionID string
}

// SecurityPolicy says which witnesses must have signed the images that run
// in the namespaces it covers.
type SecurityPolicy struct {
	Name string
	// Witnesses must have signed; Threshold of them suffice.
	Witnesses []string
	// Threshold is N in N-of-M; it equals len(Witnesses) when the document
	// leaves it out (all must have signed).
	Threshold  int
	Clusters   []string
	Namespaces []string
	// Enabled is false unless the document says otherwise: a new policy does
	// nothing until it is switched on.
	Enabled bool
	Mode    Mode
	Note    string

	pos int // place in the bundle, to keep Evaluate's output in bundle order
}

// Exemption is a time-limited break-glass: in Namespace, the image with
// ImageDigest, or the pod named Pod, runs without the policies' signatures
// until Expires. It lives in the (signed) bundle, so no pod can grant itself one.
type Exemption struct {
	Name        string
	Namespace   string
	ImageDigest string
	Pod         string
	Expires     time.Time
	Reason      string
}

// Revocation withdraws trust from Effective on: signatures by the keys with
// these fingerprints no longer count, and images with these digests are
// refused wherever the node checks images, exemptions notwithstanding.
type Revocation struct {
	Name         string
	Keys         []string
	ImageDigests []string
	// ConfigDigests are the image config digests the revoked ImageDigests
	// name (recorded by "nri-csig revocation create", which resolves them in
	// the registry). Any image with one of these configs is refused: a new
	// manifest wrapping the same config and layers is the same content.
	ConfigDigests []string
	Effective     time.Time
	Reason        string
}

// Witness returns the witness with the given name, or nil.
func (b *Bundle) Witness(name string) *Witness { return b.witnessByName[name] }

// Policy returns the security policy with the given name, or nil.
func (b *Bundle) Policy(name string) *SecurityPolicy { return b.policyByName[name] }

// Keys returns every witness key in the bundle, in bundle order: what
// pkg/verify should check signatures against ahead of time.
func (b *Bundle) Keys() []*Key {
	var ks []*Key
	for _, w := range b.Witnesses {
		ks = append(ks, w.Keys...)
	}
	return ks
}

// KeyByFingerprint returns the witness key with the given fingerprint, or nil.
func (b *Bundle) KeyByFingerprint(fp string) *Key { return b.keyByFP[fp] }

// PoliciesUsing returns the names of the policies that name the witness.
func (b *Bundle) PoliciesUsing(witness string) []string {
	var names []string
	for _, p := range b.Policies {
		for _, w := range p.Witnesses {
			if w == witness {
				names = append(names, p.Name)
				break
			}
		}
	}
	return names
}
