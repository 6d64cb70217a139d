// Package keys is the vocabulary of signing keys: the Signer interface,
// algorithms, key info, error classes, fingerprints, PEM parsing and signature
// verification. It imports no key provider (local files, Alibaba Cloud KMS):
// the node links it to verify, and never links a KMS SDK. Opening a key by
// reference is package keyref's job.
//
// Only asymmetric signing keys are accepted: RSA of at least 2048 bits and
// ECDSA P-256. Anything else is refused with ErrUnsupportedKey and a message
// naming the key to create.
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
	if _, err := checkKey(pub); err != nil {
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
func KeySpec(pub crypto.PublicKey) (string, error) { return checkKey(pub) }

// VerifyDigest checks sig over a SHA-256 digest with pub and alg. An empty alg
// means the default for the key type (RSA_PKCS1_SHA_256 or ECDSA_SHA_256).
// RSA-PSS accepts any salt length, since KMS does not document the one it uses.
// A signature that does not match returns an error wrapping ErrInvalidSignature.
func VerifyDigest(pub crypto.PublicKey, alg Algorithm, digest, sig []byte) error {
	spec, err := checkKey(pub)
	if err != nil {
		return err
	}
	if alg, err = ResolveAlgorithm(spec, alg); err != nil {
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
