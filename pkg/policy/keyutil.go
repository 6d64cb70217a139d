package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// Fingerprint returns "sha256:<hex>" of the DER SubjectPublicKeyInfo of pub,
// as pkg/keys computes it.
func Fingerprint(pub crypto.PublicKey) (string, error) { return keys.Fingerprint(pub) }

// ParsePublicKeyPEM parses exactly one PKIX "PUBLIC KEY" (or PKCS#1 "RSA
// PUBLIC KEY") PEM block and checks that it is a key a witness may hold: RSA
// of at least 2048 bits or ECDSA P-256. It returns the key and its key spec.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block found; give a PKIX public key (-----BEGIN PUBLIC KEY-----)")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, "", errors.New("more than one PEM block; give exactly one public key")
	}
	if strings.Contains(block.Type, "PRIVATE") {
		return nil, "", fmt.Errorf("PEM block is %q, not a public key; a bundle must only hold the public half (openssl pkey -pubout)", block.Type)
	}
	pub, err := keys.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, "", err
	}
	spec, err := keys.KeySpec(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, spec, nil
}

// EncodePublicKeyPEM renders pub as a PKIX "PUBLIC KEY" PEM block.
func EncodePublicKeyPEM(pub crypto.PublicKey) (string, error) {
	b, err := keys.MarshalPublicKeyPEM(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return string(b), nil
}

// defaultAlgorithm is what a key signs with when the bundle does not say:
// PKCS#1 v1.5 for RSA, as cosign does.
func defaultAlgorithm(pub crypto.PublicKey) Algorithm {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return ECDSASHA256
	}
	return RSAPKCS1SHA256
}

// checkAlgorithm reports whether alg can be used with pub.
func checkAlgorithm(pub crypto.PublicKey, alg Algorithm) error {
	switch pub.(type) {
	case *rsa.PublicKey:
		if alg == RSAPKCS1SHA256 || alg == RSAPSSSHA256 {
			return nil
		}
		return fmt.Errorf("algorithm %q does not fit an RSA key; use %s or %s", alg, RSAPKCS1SHA256, RSAPSSSHA256)
	case *ecdsa.PublicKey:
		if alg == ECDSASHA256 {
			return nil
		}
		return fmt.Errorf("algorithm %q does not fit an EC key; use %s", alg, ECDSASHA256)
	}
	return fmt.Errorf("unsupported key type %T", pub)
}
