package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Algorithm is a signature algorithm, named as Alibaba Cloud KMS names it.
type Algorithm string

// The algorithms nri-csig signs and verifies with. All hash with SHA-256.
const (
	RSAPKCS1SHA256 Algorithm = "RSA_PKCS1_SHA_256" // RSASSA-PKCS1-v1_5; the default for RSA (what cosign checks)
	RSAPSSSHA256   Algorithm = "RSA_PSS_SHA_256"   // RSASSA-PSS, MGF1-SHA-256
	ECDSASHA256    Algorithm = "ECDSA_SHA_256"     // ECDSA P-256, ASN.1 DER signatures
)

// Key specs, named as KMS names them.
const (
	SpecRSA2048 = "RSA_2048"
	SpecRSA3072 = "RSA_3072"
	SpecRSA4096 = "RSA_4096"
	SpecECP256  = "EC_P256"
)

// Info describes a signing key.
type Info struct {
	Provider     string    // "local" or "alikms"
	Ref          string    // the reference the key was opened with
	KeySpec      string    // RSA_2048, EC_P256, ...
	Algorithm    Algorithm // the algorithm SignDigest uses
	Region       string    // KMS only
	KeyID        string    // KMS only: the key id (never the alias)
	KeyVersionID string    // KMS only: the key version that signs
}

// Error classes, tested with errors.Is. Every error from this package and its
// providers that stems from the key or the key service wraps one of them.
var (
	ErrUnsupportedKey   = errors.New("unsupported key")
	ErrKeyNotFound      = errors.New("key not found")
	ErrKeyDisabled      = errors.New("key not enabled")
	ErrAuth             = errors.New("not authorized")
	ErrUnavailable      = errors.New("key service unavailable")
	ErrInvalidSignature = errors.New("invalid signature")
)

// CreateHint says which key to make, for messages refusing a key.
const CreateHint = "create an RSA-2048 signing key: `nri-csig generate-key` (local) or " +
	"`aliyun kms CreateKey --KeySpec RSA_2048 --KeyUsage SIGN/VERIFY` (Alibaba Cloud KMS)"

// checkKey returns the key spec of an acceptable verification key: RSA of at least
// 2048 bits, or ECDSA P-256. Anything else wraps ErrUnsupportedKey.
func checkKey(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch n := k.N.BitLen(); {
		case n < 2048:
			return "", fmt.Errorf("%w: RSA key of %d bits is too weak; %s", ErrUnsupportedKey, n, CreateHint)
		case n == 2048:
			return SpecRSA2048, nil
		case n == 3072:
			return SpecRSA3072, nil
		case n == 4096:
			return SpecRSA4096, nil
		default:
			return fmt.Sprintf("RSA_%d", n), nil
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA curve %s is not supported, only P-256; %s", ErrUnsupportedKey, k.Curve.Params().Name, CreateHint)
		}
		return SpecECP256, nil
	default:
		return "", fmt.Errorf("%w: %T keys are not supported; %s", ErrUnsupportedKey, pub, CreateHint)
	}
}

// ResolveAlgorithm picks the algorithm for a key spec: want when it fits the key, the
// default (PKCS#1 v1.5 for RSA, ECDSA for EC) when want is empty.
func ResolveAlgorithm(spec string, want Algorithm) (Algorithm, error) {
	ec := spec == SpecECP256
	switch want {
	case "":
		if ec {
			return ECDSASHA256, nil
		}
		return RSAPKCS1SHA256, nil
	case RSAPKCS1SHA256, RSAPSSSHA256:
		if ec {
			return "", fmt.Errorf("%w: algorithm %s needs an RSA key, this key is %s; use %s", ErrUnsupportedKey, want, spec, ECDSASHA256)
		}
		return want, nil
	case ECDSASHA256:
		if !ec {
			return "", fmt.Errorf("%w: algorithm %s needs an EC_P256 key, this key is %s; use %s or %s", ErrUnsupportedKey, want, spec, RSAPKCS1SHA256, RSAPSSSHA256)
		}
		return want, nil
	default:
		return "", fmt.Errorf("unknown signature algorithm %q: use %s, %s or %s", want, RSAPKCS1SHA256, RSAPSSSHA256, ECDSASHA256)
	}
}
