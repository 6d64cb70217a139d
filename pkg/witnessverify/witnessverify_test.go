package witnessverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/notationtest"
	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

func TestAllLeavesOutWhatItCannotVerify(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := &policy.Key{Witness: "w", Kind: policy.WitnessKeys, PublicKey: &priv.PublicKey, Fingerprint: "sha256:aa"}
	noKey := &policy.Key{Witness: "broken", Kind: policy.WitnessKeys, Fingerprint: "sha256:bb"}
	unknown := &policy.Key{Witness: "future", Kind: "future-kind", Fingerprint: "future-kind:sha256:cc"}
	var refused []string
	ks := All([]*policy.Key{good, noKey, unknown}, func(k *policy.Key, err error) { refused = append(refused, k.Witness) })
	if len(ks) != 1 || ks[0].Name != "sha256:aa" || ks[0].Public != &priv.PublicKey {
		t.Fatalf("keys = %+v, want only the public key of witness w", ks)
	}
	if len(refused) != 2 || refused[0] != "broken" || refused[1] != "future" {
		t.Fatalf("refused = %v, want [broken future]", refused)
	}
}

// notationManifest is a notation signature manifest holding envelope, as
// discovery hands it to pkg/verify.
func notationManifest(t *testing.T, subject string, envelope []byte) signature.Manifest {
	t.Helper()
	ld := signature.DigestOf(envelope)
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  signature.NotationArtifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": signature.DigestOf([]byte("{}")), "size": 2},
		"layers":        []any{map[string]any{"mediaType": signature.JWSMediaType, "digest": ld, "size": len(envelope)}},
		"subject":       map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	return signature.Manifest{Source: "reg/app@referrer", Raw: raw, Blobs: map[string][]byte{ld: envelope}}
}

func TestX509WitnessVerifiesNotationSignatures(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	subject := pkix.Name{Country: []string{"CN"}, Province: []string{"Zhejiang"}, Organization: []string{"Example"}, CommonName: "build"}
	leaf := ca.Leaf(t, subject, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	img := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 100}
	env := notationtest.Sign(t, leaf, img, signature.JWSMediaType)
	m := notationManifest(t, img.Digest.String(), env)

	witness := func(identity string) verify.Key {
		tr, err := policy.NewX509Trust(x509test.PEM(ca.Cert), nil, []string{identity}, "")
		if err != nil {
			t.Fatal(err)
		}
		k, err := For(&policy.Key{Witness: "notary", Kind: policy.WitnessX509, X509: tr, Fingerprint: tr.ID()})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	good := witness("x509.subject: C=CN, ST=Zhejiang, O=Example, CN=build")
	res := verify.Verify(img.Digest.String(), []signature.Manifest{m}, []verify.Key{good})
	if !res.OK() || res.Verified[0].Key != good.Name || res.Verified[0].Format != verify.FormatNotation {
		t.Fatalf("right identity: %+v", res)
	}
	wrong := witness("x509.subject: C=CN, ST=Zhejiang, O=Example, CN=someone else")
	res = verify.Verify(img.Digest.String(), []signature.Manifest{m}, []verify.Key{wrong})
	if res.OK() || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Reason(), "does not match the X.509 trusted identities") {
		t.Fatalf("wrong identity: %+v (%v)", res, res.Err())
	}
	// A public key never verifies a notation signature.
	pub := verify.Key{Name: "sha256:aa", Public: leaf.Key.Public()}
	if res := verify.Verify(img.Digest.String(), []signature.Manifest{m}, []verify.Key{pub}); res.OK() {
		t.Fatal("a public key verified a notation signature")
	}
}
