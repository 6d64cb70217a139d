// Package alikms signs with an asymmetric Alibaba Cloud KMS key.
package alikms

import (
	"context"
	"crypto"
	"errors"
	"time"

	"github.com/nri-csig/nri-csig/pkg/keys/internal/keyinfo"
)

// Scheme is the key reference scheme: alikms://<region>/<key-id-or-alias>[?version=<key-version-id>].
const Scheme = "alikms"

// Config configures the KMS client.
type Config struct {
	Endpoint       string
	CAFile         string
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
}

// Key is a KMS signing key.
type Key struct{ info keyinfo.Info }

// Open opens a KMS key.
func Open(ctx context.Context, ref string, alg keyinfo.Algorithm, cfg Config) (*Key, error) {
	return nil, errors.New("alikms: not implemented yet")
}

// SignDigest signs a digest.
func (k *Key) SignDigest(ctx context.Context, digest []byte) ([]byte, error) { return nil, nil }

// PublicKey returns the public key.
func (k *Key) PublicKey(ctx context.Context) (crypto.PublicKey, error) { return nil, nil }

// Info describes the key.
func (k *Key) Info() keyinfo.Info { return k.info }
