// Package keys is the one door to signing keys: Open a key reference, sign SHA-256
// digests with it, and verify signatures with VerifyDigest.
//
// A key reference is either a local PEM file (a path, or "file://" + path; package
// local) or an Alibaba Cloud KMS key, "alikms://<region>/<key-id-or-alias>[?version=<key-version-id>]"
// (package alikms). Only asymmetric signing keys are accepted: RSA of at least
// 2048 bits and ECDSA P-256. Anything else is refused with ErrUnsupportedKey and
// a message naming the key to create.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
	"github.com/nri-csig/nri-csig/pkg/keys/internal/keyinfo"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// Signer signs SHA-256 digests with a private key it may never reveal (a KMS key or a local file).
type Signer interface {
	// SignDigest signs a SHA-256 digest (32 bytes) and returns the raw signature bytes
	// (RSA: PKCS#1 v1.5 or PSS per Algorithm; ECDSA: ASN.1 DER).
	SignDigest(ctx context.Context, digest []byte) ([]byte, error)
	// PublicKey returns the verification key (*rsa.PublicKey or *ecdsa.PublicKey).
	PublicKey(ctx context.Context) (crypto.PublicKey, error)
	// Info describes the key: provider, reference, key spec, algorithm, KMS ids.
	Info() Info
}

var (
	_ Signer = (*local.Key)(nil)
	_ Signer = (*alikms.Key)(nil)
)

// Algorithm is a signature algorithm: RSA_PKCS1_SHA_256 (the default for RSA keys),
// RSA_PSS_SHA_256 or ECDSA_SHA_256.
type Algorithm = keyinfo.Algorithm

// The supported algorithms, all over SHA-256.
const (
	RSAPKCS1SHA256 = keyinfo.RSAPKCS1SHA256
	RSAPSSSHA256   = keyinfo.RSAPSSSHA256
	ECDSASHA256    = keyinfo.ECDSASHA256
)

// Info describes a key: Provider ("local" or "alikms"), Ref, KeySpec (RSA_2048,
// EC_P256, ...), Algorithm, and for KMS keys Region, KeyID and KeyVersionID.
type Info = keyinfo.Info

// Error classes, tested with errors.Is. Every error from this package and its
// providers that stems from the key or the key service wraps one of them.
var (
	// ErrUnsupportedKey: wrong key type, size, spec or usage; the message says which key to create.
	ErrUnsupportedKey = keyinfo.ErrUnsupportedKey
	// ErrKeyNotFound: the KMS key (or alias, or version) does not exist.
	ErrKeyNotFound = keyinfo.ErrKeyNotFound
	// ErrKeyDisabled: the KMS key exists but is not Enabled.
	ErrKeyDisabled = keyinfo.ErrKeyDisabled
	// ErrAuth: the KMS rejected the credentials or denied the call.
	ErrAuth = keyinfo.ErrAuth
	// ErrUnavailable: timeout, unreachable endpoint, throttling or a server error; worth retrying.
	ErrUnavailable = keyinfo.ErrUnavailable
	// ErrInvalidSignature: VerifyDigest found the signature does not match.
	ErrInvalidSignature = keyinfo.ErrInvalidSignature
)

// Options configure Open. The zero value signs with the key's default algorithm
// and reaches KMS through the shared gateway with credentials-go's default chain.
type Options struct {
	// Algorithm to sign with; empty means RSA_PKCS1_SHA_256 for RSA keys and
	// ECDSA_SHA_256 for EC keys.
	Algorithm Algorithm
	// KMS configures alikms:// references (endpoint, CA, credentials, timeouts).
	KMS alikms.Config
}

// Open opens the signing key named by ref: a local PEM file (path or file://path)
// or an Alibaba Cloud KMS key (alikms://region/key-id-or-alias[?version=id]).
func Open(ctx context.Context, ref string, opts Options) (Signer, error) {
	scheme, ok := schemeOf(ref)
	switch {
	case ref == "":
		return nil, errors.New("no key given: pass --key with a PEM file path or alikms://<region>/<key-id>")
	case !ok || scheme == "file":
		return local.Open(ref, opts.Algorithm)
	case scheme == alikms.Scheme:
		return alikms.Open(ctx, ref, opts.Algorithm, opts.KMS)
	default:
		return nil, fmt.Errorf("key reference %q: scheme %q is not supported: use a PEM file path or alikms://<region>/<key-id-or-alias>", ref, scheme)
	}
}

// OpenPublic returns the verification key named by ref: a PEM public key file
// ("PUBLIC KEY" or "RSA PUBLIC KEY"), a PEM private key file (its public half), or
// any reference Open accepts (a KMS key's public key is fetched once).
func OpenPublic(ctx context.Context, ref string, opts Options) (crypto.PublicKey, error) {
	if scheme, ok := schemeOf(ref); !ok || scheme == "file" {
		path := strings.TrimPrefix(ref, "file://")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		if pub, err := ParsePublicKeyPEM(data); err == nil {
			return pub, nil
		} else if !isPrivatePEM(data) {
			return nil, fmt.Errorf("public key %s: %w", path, err)
		}
	}
	s, err := Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	return s.PublicKey(ctx)
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1)
// block and checks that the key is one nri-csig accepts.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found: expected \"-----BEGIN PUBLIC KEY-----\"")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key: expected \"PUBLIC KEY\"", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	if _, err := keyinfo.Check(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalPublicKeyPEM encodes pub as a PEM "PUBLIC KEY" (PKIX SubjectPublicKeyInfo),
// the format cosign and KMS GetPublicKey use.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Fingerprint returns "sha256:<hex>" of the DER SubjectPublicKeyInfo of pub.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// KeySpec returns the KMS-style spec of pub (RSA_2048, EC_P256, ...), or an error
// wrapping ErrUnsupportedKey for keys nri-csig does not accept.
func KeySpec(pub crypto.PublicKey) (string, error) { return keyinfo.Check(pub) }

// VerifyDigest checks sig over a SHA-256 digest with pub and alg. An empty alg
// means the default for the key type (RSA_PKCS1_SHA_256 or ECDSA_SHA_256).
// RSA-PSS accepts any salt length, since KMS does not document the one it uses.
// A signature that does not match returns an error wrapping ErrInvalidSignature.
func VerifyDigest(pub crypto.PublicKey, alg Algorithm, digest, sig []byte) error {
	spec, err := keyinfo.Check(pub)
	if err != nil {
		return err
	}
	if alg, err = keyinfo.Resolve(spec, alg); err != nil {
		return err
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("digest is %d bytes, want a 32-byte SHA-256 digest", len(digest))
	}
	switch alg {
	case RSAPKCS1SHA256:
		err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig)
	case RSAPSSSHA256:
		err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case ECDSASHA256:
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest, sig) {
			err = errors.New("ecdsa verification error")
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s signature does not match the %s key: %v", ErrInvalidSignature, alg, spec, err)
	}
	return nil
}

// schemeOf returns the scheme of a "scheme://..." reference.
func schemeOf(ref string) (string, bool) {
	scheme, _, ok := strings.Cut(ref, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/\\.") {
		return "", false
	}
	return scheme, true
}

func isPrivatePEM(data []byte) bool {
	block, _ := pem.Decode(data)
	return block != nil && strings.Contains(block.Type, "PRIVATE KEY")
}
