package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

type ecSigner struct{ k *ecdsa.PrivateKey }

func (s ecSigner) SignDigest(_ context.Context, d []byte) ([]byte, error) {
	return ecdsa.SignASN1(rand.Reader, s.k, d)
}

// Digest signs the simple-signing payload naming the image's digest; Attach
// appends it to the .sig tag, keeps what was there, and does not add the
// same signature twice.
func TestDigestAndAttach(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := name.NewDigest(host + "/app@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := Digest(t.Context(), ecSigner{k}, img, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sig.Payload), img.DigestStr()) {
		t.Errorf("payload %s does not name %s", sig.Payload, img.DigestStr())
	}
	sum := sha256.Sum256(sig.Payload)
	if !ecdsa.VerifyASN1(&k.PublicKey, sum[:], sig.Signature) {
		t.Fatal("the signature does not verify over the payload")
	}
	for range 2 { // the second attach is a no-op
		if err := Attach(t.Context(), sig); err != nil {
			t.Fatal(err)
		}
	}
	other, err := Digest(t.Context(), ecSigner{k}, img, map[string]string{"by": "second"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	tag := img.Context().Tag(signature.SignatureTag(img.DigestStr()))
	got, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("%s has %d layers; want 2 (one per distinct signature)", tag, len(m.Layers))
	}
}

// AttachTo writes the tag sha256-<hex>.sig into the given repository (where
// cosign puts it with COSIGN_REPOSITORY), not the image's; the payload still
// names the image's repository.
func TestAttachToAnotherRepository(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := name.NewDigest(host + "/app@sha256:" + strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := name.NewRepository(host + "/team/signatures")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := Digest(t.Context(), ecSigner{k}, img, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := AttachTo(t.Context(), sig, sigs); err != nil {
		t.Fatal(err)
	}
	want := host + "/team/signatures:sha256-" + strings.Repeat("cd", 32) + ".sig"
	if got := SignatureTag(sig, sigs).String(); got != want {
		t.Fatalf("SignatureTag = %s; want %s", got, want)
	}
	if _, err := remote.Image(SignatureTag(sig, sigs)); err != nil {
		t.Fatalf("the signature is not in %s: %v", sigs, err)
	}
	if _, err := remote.Image(img.Context().Tag(signature.SignatureTag(img.DigestStr()))); err == nil {
		t.Fatal("AttachTo also wrote the image's own repository")
	}
	if !strings.Contains(string(sig.Payload), `"docker-reference":"`+host+`/app"`) {
		t.Fatalf("the payload does not name the image's repository: %s", sig.Payload)
	}
}
