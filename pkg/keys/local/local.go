// Package local signs with a private key kept in a PEM file, for development and
// air-gapped signing. Production keys belong in a KMS (package alikms).
//
// Accepted: RSA keys of at least 2048 bits (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY") and ECDSA P-256 keys (SEC1 "EC PRIVATE KEY" or PKCS#8). Encrypted
// keys, including cosign's "ENCRYPTED SIGSTORE PRIVATE KEY", are refused.
package local

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keys"
)

// Provider is the Info.Provider of local keys.
const Provider = "local"

// Key is a private key loaded from a PEM file. It is safe for concurrent use.
type Key struct {
	priv crypto.Signer
	info keys.Info
}

// Open loads the private key at path (a plain path, or "file://" + path) and signs
// with alg; an empty alg picks RSA_PKCS1_SHA_256 for RSA and ECDSA_SHA_256 for EC.
func Open(ref string, alg keys.Algorithm) (*Key, error) {
	path := strings.TrimPrefix(ref, "file://")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("local key: %w", err)
	}
	priv, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", path, err)
	}
	k, err := New(priv, alg)
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", path, err)
	}
	k.info.Ref = ref
	return k, nil
}

// New wraps an in-memory private key (*rsa.PrivateKey or *ecdsa.PrivateKey).
func New(priv crypto.Signer, alg keys.Algorithm) (*Key, error) {
	spec, err := keys.KeySpec(priv.Public())
	if err != nil {
		return nil, err
	}
	alg, err = keys.ResolveAlgorithm(spec, alg)
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, info: keys.Info{Provider: Provider, KeySpec: spec, Algorithm: alg}}, nil
}

// SignDigest signs a 32-byte SHA-256 digest. RSA-PSS uses a salt as long as the hash.
func (k *Key) SignDigest(ctx context.Context, digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(digest) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("local key: digest is %d bytes, want a 32-byte SHA-256 digest", len(digest))
	}
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		if k.info.Algorithm == keys.RSAPSSSHA256 {
			return rsa.SignPSS(rand.Reader, p, crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(nil, p, crypto.SHA256, digest)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, p, digest)
	}
	return nil, fmt.Errorf("local key: %w: %T", keys.ErrUnsupportedKey, k.priv)
}

// PublicKey returns the public half of the key.
func (k *Key) PublicKey(context.Context) (crypto.PublicKey, error) { return k.priv.Public(), nil }

// Info describes the key.
func (k *Key) Info() keys.Info { return k.info }

// ParsePrivateKeyPEM parses the first PEM block of data as an unencrypted private
// key and checks it is a key nri-csig accepts.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found: expected a PEM private key (\"-----BEGIN PRIVATE KEY-----\")")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		return nil, errors.New("cosign's encrypted key format is not supported: use an unencrypted PKCS#8 PEM key " +
			"(`nri-csig generate-key`, or `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) or a KMS key")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted PKCS#8 keys are not supported: decrypt it first (`openssl pkcs8 -in KEY -out PLAIN`) or use a KMS key")
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, errors.New("this is a public key: signing needs the private key (verification takes the public key)")
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key nri-csig reads: use PKCS#1, PKCS#8 or SEC1 PEM", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", strings.ToLower(block.Type), err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T private keys are not supported; %s", keys.ErrUnsupportedKey, key, keys.CreateHint)
	}
	if _, err := keys.KeySpec(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}
