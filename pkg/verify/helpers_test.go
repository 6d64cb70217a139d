package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/sign"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// testSigner satisfies keys.Signer's SignDigest with an in-memory key.
type testSigner struct {
	name string
	key  crypto.Signer
	pss  bool
}

func (s *testSigner) SignDigest(_ context.Context, digest []byte) ([]byte, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if s.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	}
	return s.key.Sign(rand.Reader, digest, opts)
}

func (s *testSigner) Key() Key {
	k := Key{Name: s.name, Public: s.key.Public()}
	if s.pss {
		k.Algorithm = "RSA_PSS_SHA_256"
	}
	return k
}

var testKeys = map[string]crypto.Signer{}

func newRSA(t testing.TB, name string) *testSigner {
	t.Helper()
	k, ok := testKeys[name]
	if !ok {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		testKeys[name] = k
	}
	return &testSigner{name: name, key: k}
}

func newECDSA(t testing.TB, name string) *testSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{name: name, key: k}
}

// testRegistry serves go-containerregistry's in-memory registry on loopback
// and returns its host.
func testRegistry(t testing.TB, opts ...ggcrregistry.Option) string {
	t.Helper()
	opts = append(opts, ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(ggcrregistry.New(opts...))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// pushRandom pushes a random image to host/repo:tag and returns its digest.
func pushRandom(t testing.TB, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remoteOpts()...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

// remoteOpts are the options tests write to the loopback registry with.
func remoteOpts() []remote.Option { return nil }

// signLegacy signs image with s and attaches the signature in the cosign tag.
func signLegacy(t testing.TB, s sign.Signer, image name.Digest) {
	t.Helper()
	sig, err := sign.Digest(context.Background(), s, image, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.Attach(context.Background(), sig, remoteOpts()...); err != nil {
		t.Fatal(err)
	}
}

// makeBundle returns a cosign v3 style bundle: a DSSE envelope over an
// in-toto statement with predicate type https://sigstore.dev/cosign/sign/v1.
func makeBundle(t testing.TB, s sign.Signer, subjectDigest string) []byte {
	t.Helper()
	return makeBundleOf(t, s, subjectDigest, signature.CosignSignPredicateType)
}

// makeBundleOf is makeBundle with the statement's predicate type given: an
// attestation's (SLSA provenance, SBOM) instead of cosign's signature one.
func makeBundleOf(t testing.TB, s sign.Signer, subjectDigest, predicateType string) []byte {
	t.Helper()
	stmt := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + strings.TrimPrefix(subjectDigest, "sha256:") +
		`"}}],"predicateType":"` + predicateType + `","predicate":{}}`
	sum := sha256.Sum256(signature.PAE(signature.InTotoPayloadType, []byte(stmt)))
	sig, err := s.SignDigest(context.Background(), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"mediaType":            signature.BundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "test"}, "tlogEntries": []any{}},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString([]byte(stmt)),
			"payloadType": signature.InTotoPayloadType,
			"signatures":  []map[string]string{{"sig": base64.StdEncoding.EncodeToString(sig)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attachBundle attaches bundle to image as an OCI 1.1 referrer the way
// cosign v3 does (empty config, artifactType = bundle media type).
func attachBundle(t testing.TB, image name.Digest, subjectMediaType types.MediaType, subjectSize int64, bundle []byte) {
	t.Helper()
	repo := image.Context()
	empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(bundle, signature.BundleMediaType)
	for _, l := range []v1.Layer{empty, layer} {
		if err := remote.WriteLayer(repo, l, remoteOpts()...); err != nil {
			t.Fatal(err)
		}
	}
	ed, _ := empty.Digest()
	ld, _ := layer.Digest()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  signature.BundleMediaType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": signature.BundleMediaType, "digest": ld.String(), "size": len(bundle)}},
		"subject":       map[string]any{"mediaType": subjectMediaType, "digest": image.DigestStr(), "size": subjectSize},
		"annotations":   map[string]string{"dev.sigstore.bundle.content": "dsse-envelope"},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ref := repo.Digest(signature.DigestOf(raw))
	if err := remote.Put(ref, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, remoteOpts()...); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
