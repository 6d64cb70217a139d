package verify

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// Reasons a signature does not verify, for errors.Is on Failure.Err.
// Malformed input wraps signature.ErrMalformed, a refused document type
// signature.ErrWrongType and an oversized manifest signature.ErrTooMany.
var (
	// ErrBadSignature: the signature does not verify with any of the keys
	// (signed by another key, or tampered with).
	ErrBadSignature = errors.New("signature not made by any of the keys")
	// ErrDigestMismatch: a valid signature, but over another image digest
	// (e.g. a signature copied from another image).
	ErrDigestMismatch = errors.New("signature covers another image digest")
	// ErrMissingBlob: discovery could not fetch the signed payload.
	ErrMissingBlob = errors.New("signed payload not available")
	// ErrNoSignatures: no signature was found for the digest at all.
	ErrNoSignatures = errors.New("no signatures found")
	// ErrVerifierUnavailable: a certificate witness's verifier could not
	// judge the signature (nri-csigd's certificate verifier process failed).
	// The signature counts for nothing now and the Store asks again later.
	ErrVerifierUnavailable = errors.New("certificate verifier unavailable")
)

// Key is a trusted public key, or a certificate witness's trust (Cert).
type Key struct {
	// Name identifies the key in reports (witness name or fingerprint).
	Name string
	// Public is an *rsa.PublicKey or *ecdsa.PublicKey.
	Public crypto.PublicKey
	// Algorithm is the algorithm the signatures use; empty means by key
	// type, RSA PKCS#1 v1.5 or ECDSA, which is what cosign signs with.
	Algorithm keys.Algorithm
	// Cert, when set, judges the signatures that carry their own
	// certificates (notation, keyless Sigstore) instead of a public key;
	// Public is then nil. It never sees key-based signatures.
	Cert CertVerifier
}

// CertVerifier judges signatures that carry their own certificates (Notary
// Project signatures, keyless Sigstore bundles) against one witness's trust
// anchors. It is pure (no network), bounded, and safe for concurrent use.
type CertVerifier interface {
	// Verify reports nil when sig is a valid signature of image digest by
	// the witness, and why not otherwise.
	Verify(digest string, sig CertSignature) error
}

// CertExpiry is optional on a CertVerifier whose verdicts end with time
// alone: a certificate chain that must be valid when the signature is
// judged (a Notary Project signature without a trusted timestamp).
// ValidUntil returns when a signature it verified stops verifying; the zero
// time means never. The store honours it at each decision, so a verdict
// reached before that time is not kept after it.
type CertExpiry interface {
	ValidUntil(sig CertSignature) time.Time
}

// CertSignature is one signature that carries its certificates, as
// discovered: all of it untrusted.
type CertSignature struct {
	// Format is FormatNotation, FormatBundle, or FormatLegacy (a keyless cosign .sig layer).
	Format string
	// MediaType is the layer's: signature.JWSMediaType, COSEMediaType or
	// BundleMediaType.
	MediaType string
	// Blob is the layer content (envelope or bundle), digest-checked and
	// within signature.MaxBlobSize.
	Blob []byte
	// Annotations are the signature manifest's; for a legacy keyless
	// layer (FormatLegacy), the layer's, which carry its certificate.
	Annotations map[string]string
}

// Format names the signature formats.
const (
	FormatLegacy = "cosign-simplesigning" // sha256-<hex>.sig tag layer
	FormatBundle = "sigstore-bundle"      // Sigstore bundle in an OCI referrer
	// FormatNotation is a Notary Project signature (JWS or COSE envelope)
	// in an OCI referrer.
	FormatNotation = "notation"
)

// Match is one signature that verified.
type Match struct {
	Key    string `json:"key"`
	Source string `json:"source"`
	Layer  int    `json:"layer"`
	Format string `json:"format"`
	// Digest is the image digest the signature covers (the one asked about).
	Digest      string            `json:"digest"`
	Identity    string            `json:"identity,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Failure is one signature (or manifest, Layer -1) that did not verify.
type Failure struct {
	Source string `json:"source"`
	Layer  int    `json:"layer"`
	// Key is set when the signature verified with this key but was refused anyway.
	Key string `json:"key,omitempty"`
	// Covers is the digest the signed payload names, when it is another one.
	Covers string `json:"covers,omitempty"`
	Err    error  `json:"-"`
}

// Reason is Err's text, for reports.
func (f Failure) Reason() string { return f.Err.Error() }

// Result is the outcome of Verify for one image digest.
type Result struct {
	Digest   string    `json:"digest"`
	Verified []Match   `json:"verified"`
	Failures []Failure `json:"failures"`
}

// OK reports whether at least one signature verified.
func (r *Result) OK() bool { return len(r.Verified) > 0 }

// Keys returns the names of the keys that verified, each once.
func (r *Result) Keys() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range r.Verified {
		if !seen[m.Key] {
			seen[m.Key] = true
			out = append(out, m.Key)
		}
	}
	return out
}

// Err summarises why nothing verified: nil when OK, ErrNoSignatures when
// nothing was found, else the first failure.
func (r *Result) Err() error {
	switch {
	case r.OK():
		return nil
	case len(r.Failures) == 0:
		return fmt.Errorf("%s: %w", r.Digest, ErrNoSignatures)
	default:
		f := r.Failures[0]
		return fmt.Errorf("%s: %s: %w", r.Digest, f.Source, f.Err)
	}
}

// Verify judges the signature manifests found for image digest against
// keys. It is pure and bounded: manifests are parsed with the limits of
// package signature, and each signature costs at most one check per key (one
// in all when a Sigstore bundle's key hint names one of the keys).
func Verify(digest string, manifests []signature.Manifest, ks []Key) Result {
	res := Result{Digest: digest, Verified: []Match{}, Failures: []Failure{}}
	fps := make([]string, len(ks))
	for i, k := range ks {
		fps[i], _ = keys.Fingerprint(k.Public) // "" for a key that cannot be hinted
	}
	for _, c := range extract(digest, manifests) {
		if err := c.failure(); err != nil {
			res.Failures = append(res.Failures, Failure{Source: c.source.text(digest), Layer: int(c.layer), Err: err})
			continue
		}
		i, err := c.keyIndex(ks, fps)
		if err != nil {
			res.Failures = append(res.Failures, Failure{Source: c.source.text(digest), Layer: int(c.layer), Err: err})
			continue
		}
		said := payloadFacts{}
		if c.said != nil {
			said = *c.said
		}
		if said.after != nil {
			res.Failures = append(res.Failures, Failure{Source: c.source.text(digest), Layer: int(c.layer), Key: ks[i].Name, Covers: said.covers, Err: said.after})
			continue
		}
		res.Verified = append(res.Verified, Match{Key: ks[i].Name, Source: c.source.text(digest), Layer: int(c.layer), Format: c.format.String(),
			Digest: digest, Identity: said.identity, Annotations: said.annotations})
	}
	return res
}

// check is one signature reduced to what a key decides: the SHA-256 digest
// the key must have signed, the signatures over it, and what the signed
// document says once authenticated. A check with a failure (a malformed
// manifest or layer) is refused before any key is tried.
//
// The signature store holds one per signature of every image of the node, so
// its fields are laid out small (104 bytes), and what only some signatures
// have (a failure, a refusal after authentication, the payload's identity)
// is behind a pointer.
type check struct {
	source source // of the digest the check is for

	sum  [sha256.Size]byte
	sigs sigList
	// hint is the key fingerprint the signature names (a Sigstore bundle's
	// publicKey hint), tried first; untrusted, so only an ordering.
	hint string
	// cert is the signature whole, for certificate witnesses: set for
	// notation envelopes and for bundles that carry a certificate.
	cert *certSig
	// said is what the signed payload says beyond the digest, and the
	// check's failure (nil: nothing, no failure).
	said *payloadFacts

	layer       int32 // -1: the manifest as a whole
	format      formatCode
	certificate bool // a bundle carrying a certificate (keyless)
}

// certSig is a signature for certificate witnesses, with the image digest
// it is judged for.
type certSig struct {
	CertSignature
	digest string
}

// payloadFacts are what a signed payload says besides covering the digest,
// and a check's failure: what few checks have.
type payloadFacts struct {
	// err is why the check is refused before any key is tried (the others
	// are then unset).
	err error
	// after is why an authenticated signature is refused anyway (it covers
	// another digest, or its payload is malformed); covers is that digest.
	after    error
	covers   string
	identity string
	// annotations are the signed payload's optional annotations.
	annotations map[string]string
}

// facts returns c's payload facts, adding them.
func (c *check) facts() *payloadFacts {
	if c.said == nil {
		c.said = &payloadFacts{}
	}
	return c.said
}

// failure is why c is refused before any key is tried (nil: it is not).
func (c *check) failure() error {
	if c.said == nil {
		return nil
	}
	return c.said.err
}

// fail sets c's failure.
func (c *check) fail(err error) { c.facts().err = err }

// failed returns a check of src refused before any key is tried.
func failed(src source, layer int32, err error) check {
	return check{source: src, layer: layer, said: &payloadFacts{err: err}}
}

// refusal is why c, authenticated, is refused anyway (nil: it is not).
func (c *check) refusal() error {
	if c.said == nil {
		return nil
	}
	return c.said.after
}

// formatCode is a signature format, a byte in each check.
type formatCode uint8

const (
	formatLegacy formatCode = iota
	formatBundle
	formatNotation
)

func (f formatCode) String() string {
	switch f {
	case formatBundle:
		return FormatBundle
	case formatNotation:
		return FormatNotation
	}
	return FormatLegacy
}

// extract turns manifests into checks, one per signature layer (and one per
// manifest that cannot be read), in order. It does no public-key work.
func extract(digest string, manifests []signature.Manifest) []check {
	if err := signature.ValidateDigest(digest); err != nil {
		return []check{failed(sourceOf(digest, "input"), -1, err)}
	}
	var out []check
	for _, sm := range manifests {
		src := sourceOf(digest, sm.Source)
		if sm.Err != nil {
			out = append(out, failed(src, -1, sm.Err))
			continue
		}
		m, err := signature.ParseManifest(sm.Raw)
		if err != nil {
			out = append(out, failed(src, -1, err))
			continue
		}
		for i, l := range m.Layers {
			if !signature.IsSignatureLayer(l.MediaType) {
				// Other artifacts (SBOMs, attestations) can share a referrers
				// index; they are not signatures, so they are skipped silently.
				continue
			}
			c := check{source: src, layer: int32(i), format: formatLegacy}
			switch l.MediaType {
			case signature.BundleMediaType:
				c.format = formatBundle
			case signature.JWSMediaType, signature.COSEMediaType:
				c.format = formatNotation
			}
			blob, ok := sm.Blobs[l.Digest]
			switch max := signature.MaxBlobSize(l.MediaType); {
			case l.Size > max:
				c.fail(fmt.Errorf("%w: layer %s declares %d bytes, more than the %d read", signature.ErrMalformed, l.Digest, l.Size, max))
			case !ok:
				c.fail(fmt.Errorf("%w: layer %s", ErrMissingBlob, l.Digest))
			case signature.DigestOf(blob) != l.Digest:
				c.fail(fmt.Errorf("%w: layer content digest %s, manifest says %s", signature.ErrMalformed, signature.DigestOf(blob), l.Digest))
			case c.format == formatNotation:
				// Only a certificate witness can read it; the digest it
				// covers is the witness's verifier's to check.
				c.cert = &certSig{CertSignature{Format: FormatNotation, MediaType: l.MediaType, Blob: blob, Annotations: m.Annotations}, digest}
				c.sum = sha256.Sum256(blob) // identifies it in the store; no key signs it
			case c.format == formatBundle:
				c.readBundle(digest, blob)
				if c.failure() == nil && c.certificate {
					c.cert = &certSig{CertSignature{Format: FormatBundle, MediaType: l.MediaType, Blob: blob, Annotations: m.Annotations}, digest}
				}
			default:
				c.readLegacy(digest, l, blob)
				if _, keyless := l.Annotations[signature.CertificateAnnotation]; keyless && c.failure() == nil {
					c.cert = &certSig{CertSignature{Format: FormatLegacy, MediaType: l.MediaType, Blob: blob, Annotations: l.Annotations}, digest}
				}
			}
			out = append(out, c)
		}
	}
	return out
}

// readLegacy reads a cosign simple-signing layer: the signature annotation
// over sha256 of the payload bytes, and the payload it authenticates.
func (c *check) readLegacy(digest string, l signature.Descriptor, payload []byte) {
	b64, ok := l.Annotations[signature.SignatureAnnotation]
	if !ok {
		c.fail(fmt.Errorf("%w: layer has no %s annotation", signature.ErrMalformed, signature.SignatureAnnotation))
		return
	}
	sig, err := signature.DecodeBase64(b64)
	if err != nil {
		c.fail(fmt.Errorf("signature annotation: %w", err))
		return
	}
	c.sum, c.sigs = sha256.Sum256(payload), sigsOf(sig)
	p, err := signature.ParsePayload(payload)
	switch {
	case err != nil:
		c.facts().after = err
	case p.Digest() != digest:
		f := c.facts()
		f.covers = p.Digest()
		f.after = fmt.Errorf("%w: payload names %s", ErrDigestMismatch, p.Digest())
	case p.Critical.Identity.DockerReference != "" || len(p.Optional) > 0:
		f := c.facts()
		f.identity, f.annotations = p.Critical.Identity.DockerReference, p.Optional
	}
}

// readBundle reads a cosign v3 bundle: the DSSE signatures over the PAE, and
// the in-toto statement's subject. Tlog entries and timestamps are not
// consulted: verification is key-based and offline.
func (c *check) readBundle(digest string, blob []byte) {
	b, err := signature.ParseSigstoreBundle(blob)
	if err != nil {
		c.fail(err)
		return
	}
	env := b.DSSEEnvelope
	c.sum, c.sigs = sha256.Sum256(signature.PAE(env.PayloadType, env.Payload)), sigsOf(env.Signatures...)
	c.hint, c.certificate = hintFingerprint(b.KeyHint), b.Certificate
	st, err := signature.ParseStatement(env.Payload)
	if err != nil {
		c.facts().after = err
		return
	}
	if !st.Covers(digest) {
		f := c.facts()
		f.covers = strings.Join(st.Digests(), ",")
		f.after = fmt.Errorf("%w: statement subject %s", ErrDigestMismatch, f.covers)
		return
	}
	for _, s := range st.Subject {
		if s.Digest["sha256"] == strings.TrimPrefix(digest, "sha256:") {
			if s.Name == "" && len(s.Annotations) == 0 && c.said == nil {
				continue // nothing to say: no facts allocated
			}
			f := c.facts()
			f.identity = s.Name
			for k, v := range s.Annotations {
				if f.annotations == nil {
					f.annotations = map[string]string{}
				}
				f.annotations[k] = fmt.Sprint(v)
			}
		}
	}
}

// hintFingerprint turns a Sigstore publicKey hint into a key fingerprint.
// cosign and sigstore-go write base64(sha256(PKIX DER of the key)), which is
// keys.Fingerprint in another encoding; any other hint names no key.
func hintFingerprint(hint string) string {
	b, err := base64.StdEncoding.DecodeString(hint)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return "sha256:" + hex.EncodeToString(b)
}

// verifyDigest is keys.VerifyDigest, a variable so that tests count the
// public-key checks made.
var verifyDigest = keys.VerifyDigest

// errNotCertificate: a certificate witness is asked about a signature that
// carries no certificate (a public-key signature).
var errNotCertificate = errors.New("not a certificate-bearing signature")

// verify reports nil when one of c's signatures is k's over c.sum, or, for a
// certificate witness, when k's verifier accepts c whole; else why not.
func (c *check) verify(k Key) error {
	if k.Cert != nil {
		if c.cert == nil {
			return errNotCertificate
		}
		return k.Cert.Verify(c.cert.digest, c.cert.CertSignature)
	}
	for sig := range c.sigs.all() {
		if verifyDigest(k.Public, k.Algorithm, c.sum[:], []byte(sig)) == nil {
			return nil
		}
	}
	return ErrBadSignature
}

// keyIndex returns the index in ks of the key that made c's signature,
// trying the hinted key first. fps are the keys' fingerprints, to match the
// hint with (nil: no hint is used). When none did, the error carries the
// reasons the certificate witnesses gave (why the certificate is not
// trusted), which is what a user needs to fix a certificate signature.
func (c *check) keyIndex(ks []Key, fps []string) (int, error) {
	if len(ks) == 0 {
		return -1, fmt.Errorf("%w: no keys given", ErrBadSignature)
	}
	i, reasons, _ := c.find(ks, fps)
	if i >= 0 {
		return i, nil
	}
	err := badSignature(ks)
	if reasons != "" {
		err = fmt.Errorf("%w; %s", err, reasons)
	}
	return -1, err
}

// find is keyIndex's search: the index of the key (-1: none) and, when
// none, the certificate witnesses' reasons and the indexes of the keys
// whose verifier could not judge (ErrVerifierUnavailable: to ask again).
func (c *check) find(ks []Key, fps []string) (int, string, []int) {
	var reasons []string
	var again []int
	try := func(i int) bool {
		err := c.verify(ks[i])
		if err != nil && ks[i].Cert != nil && c.cert != nil && len(reasons) < maxCertReasons {
			reasons = append(reasons, certReason(ks[i].Name, err))
		}
		if errors.Is(err, ErrVerifierUnavailable) {
			again = append(again, i)
		}
		return err == nil
	}
	hinted := -1
	if c.hint != "" && fps != nil {
		if i := slices.Index(fps, c.hint); i >= 0 {
			hinted = i
			if try(i) {
				return i, "", nil
			}
		}
	}
	for i := range ks {
		if i != hinted && try(i) {
			return i, "", nil
		}
	}
	return -1, strings.Join(reasons, "; "), again
}

// Bounds on the certificate witnesses' reasons carried in one error.
const (
	maxCertReasons   = 8
	maxCertReasonLen = 400
)

func certReason(name string, err error) string {
	r := err.Error()
	if len(r) > maxCertReasonLen {
		r = r[:maxCertReasonLen] + "..."
	}
	return name + ": " + r
}

func badSignature(ks []Key) error {
	if len(ks) == 0 {
		return fmt.Errorf("%w: no keys given", ErrBadSignature)
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return fmt.Errorf("%w (tried %s)", ErrBadSignature, strings.Join(names, ", "))
}

// MarshalJSON adds the reason text, since errors do not marshal.
func (f Failure) MarshalJSON() ([]byte, error) {
	type plain Failure
	return json.Marshal(struct {
		plain
		Reason string `json:"reason"`
	}{plain(f), f.Reason()})
}
