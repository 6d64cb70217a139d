package certchild

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// Operations a request asks for.
const (
	opVerify = "verify" // Verify, and ValidUntil when it verified
	opUntil  = "until"  // ValidUntil alone
)

type request struct {
	ID     uint64               `json:"id"`
	Op     string               `json:"op"`
	Trust  json.RawMessage      `json:"trust"`
	Digest string               `json:"digest,omitempty"`
	Sig    verify.CertSignature `json:"sig"`
}

// Reply classes: what kind of refusal Refusal is, so that errors.Is on the
// client's error finds the verify sentinel the verifier wrapped.
const (
	classBadSignature   = "bad-signature"
	classDigestMismatch = "digest-mismatch"
	classTrust          = "trust" // the witness's trust could not be loaded
)

type reply struct {
	ID uint64 `json:"id"`
	// Refusal is why the signature does not verify ("": it does).
	Refusal string `json:"refusal,omitempty"`
	Class   string `json:"class,omitempty"`
	// Until is ValidUntil's answer in Unix nanoseconds (0: never).
	Until int64 `json:"until,omitempty"`
}

// trust is a witness's trust on the wire: what pkg/policy parsed from the
// bundle, certificates as DER.
type trust struct {
	Kind     policy.WitnessKind    `json:"kind"`
	X509     *x509Trust            `json:"x509,omitempty"`
	Sigstore *policy.SigstoreTrust `json:"sigstore,omitempty"`
}

type x509Trust struct {
	CA              [][]byte `json:"ca"`
	TSA             [][]byte `json:"tsa,omitempty"`
	Identities      []string `json:"identities"`
	VerifyTimestamp string   `json:"verifyTimestamp,omitempty"`
	Revocation      string   `json:"revocation,omitempty"`
}

// encodeTrust returns k's trust on the wire and its hash (what the child
// caches its verifier by).
func encodeTrust(k *policy.Key) ([]byte, [sha256.Size]byte, error) {
	t := trust{Kind: k.Kind}
	switch k.Kind {
	case policy.WitnessX509:
		if k.X509 == nil {
			return nil, [32]byte{}, errors.New("x509 witness without trust material")
		}
		x := &x509Trust{Identities: k.X509.TrustedIdentities, VerifyTimestamp: k.X509.VerifyTimestamp, Revocation: k.X509.Revocation}
		for _, c := range k.X509.CACertificates {
			x.CA = append(x.CA, c.Raw)
		}
		for _, c := range k.X509.TSACertificates {
			x.TSA = append(x.TSA, c.Raw)
		}
		t.X509 = x
	case policy.WitnessSigstore:
		if k.Sigstore == nil {
			return nil, [32]byte{}, errors.New("sigstore witness without trust material")
		}
		t.Sigstore = k.Sigstore
	default:
		return nil, [32]byte{}, fmt.Errorf("kind %s is not a certificate witness", k.Kind)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, [32]byte{}, err
	}
	if len(b) > maxTrust {
		return nil, [32]byte{}, fmt.Errorf("trust material of %d bytes, over the %d the certificate verifier process takes", len(b), maxTrust)
	}
	return b, sha256.Sum256(b), nil
}

// decodeTrust is encodeTrust's inverse: the policy.Key the child builds a
// verifier from.
func decodeTrust(b []byte) (*policy.Key, error) {
	var t trust
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	k := &policy.Key{Kind: t.Kind}
	switch {
	case t.Kind == policy.WitnessX509 && t.X509 != nil:
		x := &policy.X509Trust{TrustedIdentities: t.X509.Identities, VerifyTimestamp: t.X509.VerifyTimestamp, Revocation: t.X509.Revocation}
		var err error
		if x.CACertificates, err = parseCerts(t.X509.CA); err != nil {
			return nil, err
		}
		if x.TSACertificates, err = parseCerts(t.X509.TSA); err != nil {
			return nil, err
		}
		k.X509 = x
	case t.Kind == policy.WitnessSigstore && t.Sigstore != nil:
		k.Sigstore = t.Sigstore
	default:
		return nil, fmt.Errorf("trust of kind %q without its material", t.Kind)
	}
	return k, nil
}

func parseCerts(ders [][]byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("trust: certificate: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// classOf names the verify sentinel err wraps, for the reply.
func classOf(err error) string {
	switch {
	case errors.Is(err, verify.ErrDigestMismatch):
		return classDigestMismatch
	case errors.Is(err, verify.ErrBadSignature):
		return classBadSignature
	}
	return ""
}

// refusal is a verifier's refusal as the child gave it: its text, and the
// verify sentinel it wrapped.
type refusal struct {
	msg   string
	class error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.class }

func refusalOf(rep *reply) error {
	var class error
	switch rep.Class {
	case classBadSignature:
		class = verify.ErrBadSignature
	case classDigestMismatch:
		class = verify.ErrDigestMismatch
	}
	return &refusal{msg: rep.Refusal, class: class}
}
