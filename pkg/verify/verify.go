package verify

import (
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
)

// Key is a trusted public key.
type Key struct {
	// Name identifies the key in reports (witness name or fingerprint).
	Name string
	// Public is an *rsa.PublicKey or *ecdsa.PublicKey.
	Public crypto.PublicKey
	// Algorithm is the algorithm the signatures use; empty means by key
	// type, RSA PKCS#1 v1.5 or ECDSA, which is what cosign signs with.
	Algorithm keys.Algorithm
}

// Format names the signature formats.
const (
	FormatLegacy = "cosign-simplesigning" // sha256-<hex>.sig tag layer
	FormatBundle = "sigstore-bundle"      // Sigstore bundle in an OCI referrer
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
// package signature, and each layer costs at most one signature check per key.
func Verify(digest string, manifests []signature.Manifest, ks []Key) Result {
	res := Result{Digest: digest, Verified: []Match{}, Failures: []Failure{}}
	if err := signature.ValidateDigest(digest); err != nil {
		res.Failures = append(res.Failures, Failure{Source: "input", Layer: -1, Err: err})
		return res
	}
	for _, sm := range manifests {
		if sm.Err != nil {
			res.Failures = append(res.Failures, Failure{Source: sm.Source, Layer: -1, Err: sm.Err})
			continue
		}
		m, err := signature.ParseManifest(sm.Raw)
		if err != nil {
			res.Failures = append(res.Failures, Failure{Source: sm.Source, Layer: -1, Err: err})
			continue
		}
		for i, l := range m.Layers {
			fail := func(key string, err error) {
				res.Failures = append(res.Failures, Failure{Source: sm.Source, Layer: i, Key: key, Err: err})
			}
			if l.MediaType != signature.SimpleSigningMediaType && l.MediaType != signature.BundleMediaType {
				// Other artifacts (SBOMs, attestations) can share a referrers
				// index; they are not signatures, so they are skipped silently.
				continue
			}
			if max := signature.MaxBlobSize(l.MediaType); l.Size > max {
				fail("", fmt.Errorf("%w: layer %s declares %d bytes, more than the %d read", signature.ErrMalformed, l.Digest, l.Size, max))
				continue
			}
			blob, ok := sm.Blobs[l.Digest]
			if !ok {
				fail("", fmt.Errorf("%w: layer %s", ErrMissingBlob, l.Digest))
				continue
			}
			if got := signature.DigestOf(blob); got != l.Digest {
				fail("", fmt.Errorf("%w: layer content digest %s, manifest says %s", signature.ErrMalformed, got, l.Digest))
				continue
			}
			var match Match
			var covers string
			if l.MediaType == signature.BundleMediaType {
				match, covers, err = verifyBundle(digest, blob, ks)
			} else {
				match, covers, err = verifyLegacy(digest, l, blob, ks)
			}
			if err != nil {
				res.Failures = append(res.Failures, Failure{Source: sm.Source, Layer: i, Key: match.Key, Covers: covers, Err: err})
				continue
			}
			match.Source, match.Layer = sm.Source, i
			res.Verified = append(res.Verified, match)
		}
	}
	return res
}

// verifyLegacy checks a cosign simple-signing layer: signature first (over
// sha256 of the payload bytes), then the payload it authenticates.
func verifyLegacy(digest string, l signature.Descriptor, payload []byte, ks []Key) (Match, string, error) {
	m := Match{Format: FormatLegacy}
	b64, ok := l.Annotations[signature.SignatureAnnotation]
	if !ok {
		return m, "", fmt.Errorf("%w: layer has no %s annotation", signature.ErrMalformed, signature.SignatureAnnotation)
	}
	sig, err := signature.DecodeBase64(b64)
	if err != nil {
		return m, "", fmt.Errorf("signature annotation: %w", err)
	}
	sum := sha256.Sum256(payload)
	key, err := findKey(ks, sum[:], sig)
	if err != nil {
		return m, "", err
	}
	m.Key = key
	p, err := signature.ParsePayload(payload)
	if err != nil {
		return m, "", err
	}
	if p.Digest() != digest {
		return m, p.Digest(), fmt.Errorf("%w: payload names %s", ErrDigestMismatch, p.Digest())
	}
	m.Digest, m.Identity, m.Annotations = p.Digest(), p.Critical.Identity.DockerReference, p.Optional
	return m, "", nil
}

// verifyBundle checks a cosign v3 bundle: the DSSE signature over the PAE,
// then the in-toto statement's subject. Tlog entries and timestamps are not
// consulted: verification is key-based and offline.
func verifyBundle(digest string, blob []byte, ks []Key) (Match, string, error) {
	m := Match{Format: FormatBundle}
	b, err := signature.ParseBundle(blob)
	if err != nil {
		return m, "", err
	}
	env := b.DSSEEnvelope
	sum := sha256.Sum256(signature.PAE(env.PayloadType, env.Payload))
	var key string
	for _, sig := range env.Signatures {
		if key, err = findKey(ks, sum[:], sig); err == nil {
			break
		}
	}
	if err != nil {
		return m, "", err
	}
	m.Key = key
	st, err := signature.ParseStatement(env.Payload)
	if err != nil {
		return m, "", err
	}
	if !st.Covers(digest) {
		covers := strings.Join(st.Digests(), ",")
		return m, covers, fmt.Errorf("%w: statement subject %s", ErrDigestMismatch, covers)
	}
	m.Digest = digest
	for _, s := range st.Subject {
		if s.Digest["sha256"] == strings.TrimPrefix(digest, "sha256:") {
			m.Identity = s.Name
			for k, v := range s.Annotations {
				if m.Annotations == nil {
					m.Annotations = map[string]string{}
				}
				m.Annotations[k] = fmt.Sprint(v)
			}
		}
	}
	return m, "", nil
}

// findKey returns the name of the first key under which sig is a valid
// signature of the SHA-256 digest.
func findKey(ks []Key, digest, sig []byte) (string, error) {
	if len(ks) == 0 {
		return "", fmt.Errorf("%w: no keys given", ErrBadSignature)
	}
	for _, k := range ks {
		if keys.VerifyDigest(k.Public, k.Algorithm, digest, sig) == nil {
			return k.Name, nil
		}
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return "", fmt.Errorf("%w (tried %s)", ErrBadSignature, strings.Join(names, ", "))
}

// MarshalJSON adds the reason text, since errors do not marshal.
func (f Failure) MarshalJSON() ([]byte, error) {
	type plain Failure
	return json.Marshal(struct {
		plain
		Reason string `json:"reason"`
	}{plain(f), f.Reason()})
}
