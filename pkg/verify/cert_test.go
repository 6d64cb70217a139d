package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// fakeCert is a certificate witness that accepts one exact envelope for one
// digest, and counts what it was asked.
type fakeCert struct {
	digest, blob string
	calls        atomic.Int32
	last         CertSignature
}

func (f *fakeCert) Verify(digest string, sig CertSignature) error {
	f.calls.Add(1)
	f.last = sig
	if digest != f.digest || string(sig.Blob) != f.blob {
		return errors.New("not this witness's signature")
	}
	return nil
}

// attachReferrer attaches one layer of layerType to image as an OCI 1.1
// referrer of artifactType, as notation does.
func attachReferrer(t testing.TB, image name.Digest, artifactType, layerType string, blob []byte, annotations map[string]string) {
	t.Helper()
	repo := image.Context()
	empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(blob, types.MediaType(layerType))
	for _, l := range []v1.Layer{empty, layer} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	ed, _ := empty.Digest()
	ld, _ := layer.Digest()
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  artifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": layerType, "digest": ld.String(), "size": len(blob)}},
		"subject":       map[string]any{"mediaType": types.OCIManifestSchema1, "digest": image.DigestStr(), "size": 100},
		"annotations":   annotations,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Digest(signature.DigestOf(raw)), rawManifest{raw: raw, mt: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

// A notation envelope is found as a referrer and judged by the certificate
// witness alone, whole, with the manifest's annotations; public keys never
// verify it; and the store keeps it across a restart and a key change.
func TestNotationSignatureGoesToCertificateWitness(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	digest := img.DigestStr()
	envelope := `{"payload":"not parsed by pkg/verify","signatures":[]}`
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(envelope),
		map[string]string{"io.cncf.notary.x509chain.thumbprint#S256": `["abc"]`})
	// An unrelated artifact of another type is not a signature.
	attachReferrer(t, img, "application/spdx+json", "application/spdx+json", []byte(`{}`), nil)

	ms, err := NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	ca := &fakeCert{digest: digest, blob: envelope}
	caKey := Key{Name: "x509:sha256:" + digest[7:], Cert: ca}
	other := &fakeCert{digest: digest, blob: "another envelope"}
	otherKey := Key{Name: "x509:sha256:" + digest[7:][:62] + "00", Cert: other}
	pub := fpKey(t, newRSA(t, "ci"))

	res := Verify(digest, ms, []Key{pub, otherKey, caKey})
	if !res.OK() || len(res.Verified) != 1 || res.Verified[0].Key != caKey.Name || res.Verified[0].Format != FormatNotation {
		t.Fatalf("verified = %+v failures = %+v; want one notation match by %s", res.Verified, res.Failures, caKey.Name)
	}
	if ca.last.MediaType != signature.JWSMediaType || ca.last.Format != FormatNotation || ca.last.Annotations["io.cncf.notary.x509chain.thumbprint#S256"] != `["abc"]` {
		t.Fatalf("the witness was given %+v", ca.last)
	}
	if res := Verify(digest, ms, []Key{pub}); res.OK() {
		t.Fatal("a public key verified a notation envelope")
	}
	// Another image's digest is not this envelope's, for the witness.
	if res := Verify("sha256:"+digest[7:][:62]+"00", ms, []Key{caKey}); res.OK() {
		t.Fatal("the envelope verified for another digest")
	}

	dir := NewDir(t.TempDir())
	st := NewStore(dir, NewRegistry())
	st.SetKeys([]Key{pub, caKey})
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if !st.Verified(digest, caKey.Name) || st.Verified(digest, pub.Name) {
		t.Fatal("the store did not credit exactly the certificate witness")
	}
	calls := ca.calls.Load()
	st.SetKeys([]Key{pub, caKey}) // same keys: nothing is verified twice
	if ca.calls.Load() != calls {
		t.Fatalf("re-setting the same keys asked the witness again (%d -> %d calls)", calls, ca.calls.Load())
	}
	st.Close()
	st2 := NewStore(dir, NewRegistry())
	defer st2.Close()
	st2.SetKeys([]Key{caKey})
	if !st2.Verified(digest, caKey.Name) {
		t.Fatal("the persisted notation signature did not verify after a restart")
	}
	st2.SetKeys([]Key{otherKey})
	if st2.Verified(digest, caKey.Name) || st2.Verified(digest, otherKey.Name) {
		t.Fatal("a witness no longer in force, or the wrong one, counts")
	}
}

// downCert is a certificate witness whose verifier cannot judge (nri-csigd's
// certificate verifier process is down) until up is set.
type downCert struct {
	fakeCert
	up atomic.Bool
}

func (d *downCert) Verify(digest string, sig CertSignature) error {
	if !d.up.Load() {
		d.calls.Add(1)
		return fmt.Errorf("%w: the process exited", ErrVerifierUnavailable)
	}
	return d.fakeCert.Verify(digest, sig)
}

// A verifier that could not judge gave no verdict: the store asks it again
// at the next look-up (a key that refused is not asked again).
func TestUnavailableCertVerifierIsAskedAgain(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	digest := img.DigestStr()
	envelope := `{"payload":"not parsed by pkg/verify","signatures":[]}`
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(envelope), nil)
	cert := &downCert{fakeCert: fakeCert{digest: digest, blob: envelope}}
	key := Key{Name: "x509:sha256:" + digest[7:], Cert: cert}
	st := NewStore(nil, NewRegistry())
	defer st.Close()
	st.SetKeys([]Key{key})
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if st.Verified(digest, key.Name) || cert.calls.Load() != 1 {
		t.Fatalf("verified %v after %d calls with the verifier down; want false after 1", st.Verified(digest, key.Name), cert.calls.Load())
	}
	cert.up.Store(true)
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if !st.Verified(digest, key.Name) {
		t.Fatalf("not verified once the verifier is back: %s", st.Status(digest))
	}
}
