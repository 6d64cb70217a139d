// Package keyref opens signing keys by reference: a local PEM file (a path,
// or "file://" + path; package keys/local) or an Alibaba Cloud KMS key,
// "alikms://<region>/<key-id-or-alias>[?version=<key-version-id>]" (package
// keys/alikms). It is the one place that links the key providers, so that
// only the signing CLI imports the KMS SDK; nodes use package keys alone.
package keyref

import (
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/alikms"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

var (
	_ keys.Signer = (*local.Key)(nil)
	_ keys.Signer = (*alikms.Key)(nil)
)

// Options configure Open. The zero value signs with the key's default algorithm
// and reaches KMS through the shared gateway with credentials-go's default chain.
type Options struct {
	// Algorithm to sign with; empty means RSA_PKCS1_SHA_256 for RSA keys and
	// ECDSA_SHA_256 for EC keys.
	Algorithm keys.Algorithm
	// KMS configures alikms:// references (endpoint, CA, credentials, timeouts).
	KMS alikms.Config
}

// Open opens the signing key named by ref: a local PEM file (path or file://path)
// or an Alibaba Cloud KMS key (alikms://region/key-id-or-alias[?version=id]).
func Open(ctx context.Context, ref string, opts Options) (keys.Signer, error) {
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
		if pub, err := keys.ParsePublicKeyPEM(data); err == nil {
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
