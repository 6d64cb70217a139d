package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// These helpers mirror pkg/keys (Fingerprint, VerifyDigest) so that this
// package stands alone until pkg/keys lands; the formats are the same.

// Fingerprint returns "sha256:<hex>" of the DER SubjectPublicKeyInfo of pub.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ParsePublicKeyPEM parses a PKIX "PUBLIC KEY" PEM block (or, for
// convenience, a PKCS#1 "RSA PUBLIC KEY") and checks that it is a key a
// witness may hold: RSA of at least 2048 bits or ECDSA P-256. It returns the
// key and its key spec.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block found; give a PKIX public key (-----BEGIN PUBLIC KEY-----)")
	}
	if len(bytesTrimSpace(rest)) != 0 {
		return nil, "", errors.New("more than one PEM block; give exactly one public key")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("PEM block is %q, not a public key; give the public half of the key (e.g. openssl pkey -pubout)", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("parse public key: %w", err)
	}
	spec, err := KeySpecOf(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, spec, nil
}

// KeySpecOf names the key spec of pub (RSA_2048, EC_P256, ...) and refuses
// keys a witness may not hold, saying which key to create instead.
func KeySpecOf(pub crypto.PublicKey) (string, error) {
	const create = "create an asymmetric SIGN/VERIFY key of spec RSA_2048 (or EC_P256)"
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too weak; %s", bits, create)
		}
		return fmt.Sprintf("RSA_%d", bits), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on curve %s is not supported; %s", k.Curve.Params().Name, create)
		}
		return "EC_P256", nil
	default:
		return "", fmt.Errorf("%T keys are not supported; %s", pub, create)
	}
}

// EncodePublicKeyPEM renders pub as a PKIX "PUBLIC KEY" PEM block.
func EncodePublicKeyPEM(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
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

// VerifyDigest checks sig over a SHA-256 digest with pub and alg.
func VerifyDigest(pub crypto.PublicKey, alg Algorithm, digest, sig []byte) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("digest is %d bytes, want a SHA-256 digest", len(digest))
	}
	if err := checkAlgorithm(pub, alg); err != nil {
		return err
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg == RSAPSSSHA256 {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
		// KMS services may return the raw r||s form.
		if len(sig) == 64 {
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k, digest, r, s) {
				return nil
			}
		}
		return errors.New("ecdsa: signature does not verify")
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

func bytesTrimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
