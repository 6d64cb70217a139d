// Package notarysign makes Notary Project (notation) signatures with a key
// of package keys — a local key or an Alibaba Cloud KMS key — and an X.509
// certificate chain whose leaf holds that key's public half, and attaches
// them to images as notation does: an OCI 1.1 referrer of artifactType
// application/vnd.cncf.notary.signature, with the sha256-<hex> referrers tag
// on registries without the referrers API. It is the signing side of the
// x509 witness kind (package notaryverify verifies); the CLI uses it, never
// the node daemon.
package notarysign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	notarysig "github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// payloadType is the media type of a Notary Project signature payload.
const payloadType = "application/vnd.cncf.notary.payload.v1+json"

// thumbprintAnnotation lists the SHA-256 thumbprints of the chain, as
// notation writes it on signature manifests.
const thumbprintAnnotation = "io.cncf.notary.x509chain.thumbprint#S256"

// Sign makes a Notary Project signature (a JWS envelope, signing scheme
// notary.x509) of the artifact desc with s. chain is the signing
// certificate first, then its issuers; the leaf's public key must be s's.
// notation signs RSA keys with PSS: an RSA key must use RSA_PSS_SHA_256
// (RSA 2048: PS256), an EC key ECDSA_SHA_256 (P-256: ES256).
func Sign(ctx context.Context, s keys.Signer, chain []*x509.Certificate, desc ocispec.Descriptor, agent string) ([]byte, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate chain: give the signing certificate (whose public key is the key's) and its issuers")
	}
	pub, err := s.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(pub, chain[0].PublicKey) {
		return nil, fmt.Errorf("the signing certificate %q holds another public key than the key %s; issue a certificate for this key's public half", chain[0].Subject, s.Info().Ref)
	}
	spec, err := notarysig.ExtractKeySpec(chain[0])
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	alg := s.Info().Algorithm
	switch spec {
	case notarysig.KeySpec{Type: notarysig.KeyTypeRSA, Size: 2048}:
		if alg != keys.RSAPSSSHA256 {
			return nil, fmt.Errorf("the Notary Project signs RSA keys with PSS: sign with algorithm %s (a KMS key with RSA_PSS_SHA_256, --signature-algorithm %s), not %s", keys.RSAPSSSHA256, keys.RSAPSSSHA256, orDefault(alg))
		}
	case notarysig.KeySpec{Type: notarysig.KeyTypeEC, Size: 256}:
	default:
		return nil, fmt.Errorf("a %v-bit %v signing key would sign with SHA-384 or SHA-512 in the Notary Project format; use RSA 2048 (PSS) or EC P-256, which sign SHA-256 digests", spec.Size, spec.Type)
	}
	payload, err := json.Marshal(struct {
		TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
	}{ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}})
	if err != nil {
		return nil, err
	}
	env, err := notarysig.NewEnvelope(jws.MediaTypeEnvelope)
	if err != nil {
		return nil, err
	}
	req := &notarysig.SignRequest{
		Payload:       notarysig.Payload{ContentType: payloadType, Content: payload},
		Signer:        &digestSigner{ctx: ctx, s: s, chain: chain, spec: spec},
		SigningTime:   time.Now(),
		SigningScheme: notarysig.SigningSchemeX509,
		SigningAgent:  agent,
	}
	blob, err := env.Sign(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("notation envelope: %w", err)
	}
	return blob, nil
}

func orDefault(a keys.Algorithm) string {
	if a == "" {
		return "the default PKCS#1 v1.5"
	}
	return string(a)
}

// digestSigner is a notation-core-go Signer that signs the SHA-256 digest of
// the JWS signing input with a keys.Signer (a KMS call for a KMS key).
type digestSigner struct {
	ctx   context.Context
	s     keys.Signer
	chain []*x509.Certificate
	spec  notarysig.KeySpec
}

func (d *digestSigner) Sign(payload []byte) ([]byte, []*x509.Certificate, error) {
	sum := sha256.Sum256(payload)
	sig, err := d.s.SignDigest(d.ctx, sum[:])
	if err != nil {
		return nil, nil, err
	}
	if d.spec.Type == notarysig.KeyTypeEC {
		// JWS ES256 wants r||s, 32 bytes each; keys signers return ASN.1 DER.
		if sig, err = rawECDSA(sig, 32); err != nil {
			return nil, nil, err
		}
	}
	return sig, d.chain, nil
}

func (d *digestSigner) KeySpec() (notarysig.KeySpec, error) { return d.spec, nil }

func rawECDSA(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ECDSA signature is not ASN.1 DER")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

func samePublicKey(a, b any) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		return a.Equal(b)
	case *ecdsa.PublicKey:
		return a.Equal(b)
	}
	return false
}

// Attach pushes envelope as a Notary Project signature of subject in
// image's repository, as notation does: an OCI image manifest whose config
// ("{}") has media type application/vnd.cncf.notary.signature, the envelope
// as its one layer and subject as its subject. A registry without the
// referrers API gets the referrers tag sha256-<hex> updated instead
// (go-containerregistry's fallback, the one notation uses). It returns the
// signature manifest's reference.
func Attach(ctx context.Context, image name.Digest, subject v1.Descriptor, envelope []byte, chain []*x509.Certificate, opts ...remote.Option) (name.Digest, error) {
	opts = append(opts, remote.WithContext(ctx))
	repo := image.Context()
	cfg := static.NewLayer([]byte("{}"), types.MediaType(signature.NotationArtifactType))
	layer := static.NewLayer(envelope, types.MediaType(signature.JWSMediaType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("uploading the signature: %w", err)
		}
	}
	thumbs := make([]string, len(chain))
	for i, c := range chain {
		sum := sha256.Sum256(c.Raw)
		thumbs[i] = hex.EncodeToString(sum[:])
	}
	tj, err := json.Marshal(thumbs)
	if err != nil {
		return name.Digest{}, err
	}
	ld, err := layer.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	// As notation writes it: the config, "{}", has the signature's media
	// type, which is what referrers indexes report as its artifactType.
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: signature.NotationArtifactType, Digest: ocispec.DescriptorEmptyJSON.Digest, Size: 2},
		Layers:    []ocispec.Descriptor{{MediaType: signature.JWSMediaType, Digest: digestOf(ld), Size: int64(len(envelope))}},
		Subject:   &ocispec.Descriptor{MediaType: string(subject.MediaType), Digest: digestOf(subject.Digest), Size: subject.Size},
		Annotations: map[string]string{
			thumbprintAnnotation:      string(tj),
			ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339),
		},
	}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return name.Digest{}, err
	}
	ref := repo.Digest(signature.DigestOf(raw))
	if err := remote.Put(ref, rawManifest(raw), opts...); err != nil {
		return name.Digest{}, fmt.Errorf("writing the signature manifest %s: %w", ref, err)
	}
	return ref, nil
}

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return bytes.Clone(r), nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
