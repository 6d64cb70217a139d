package verify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/registry"
	"github.com/nri-csig/nri-csig/internal/regtest"
	"github.com/nri-csig/nri-csig/pkg/sign"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

// A hosts.toml mirror that serves a signature the witness did not make for
// the image (another key's, the witness's own tampered, or the witness's
// signature of another image) gets "not verified", never allowed: what
// decides is the witness's key, not where the signature was read. The
// mirror answered, so the registry's own valid signature is not read: a
// hostile mirror can withhold a signature, never forge one. A mirror that
// has no signature for the image (404) passes the read on to the registry,
// whose valid signature verifies.
func TestMirrorServingAForgedSignature(t *testing.T) {
	ca, err := regtest.NewCA("verify mirror test CA")
	if err != nil {
		t.Fatal(err)
	}
	start := func() *regtest.Registry {
		r, err := regtest.Start(ca, regtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	tlsOpt := remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}})
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	push := func(host string) name.Digest {
		ref, _ := name.ParseReference(host + "/app:1")
		if err := remote.Write(ref, img, tlsOpt); err != nil {
			t.Fatal(err)
		}
		return ref.Context().Digest(d.String())
	}
	witness, other := newECDSA(t, "witness"), newECDSA(t, "other")
	signWith := func(s sign.Signer, image name.Digest) *sign.Signature {
		sig, err := sign.Digest(t.Context(), s, image, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}

	upstream := start()
	image := push(upstream.Host) // the image as pods name it: the registry's
	if err := sign.Attach(t.Context(), signWith(witness, image), tlsOpt); err != nil {
		t.Fatal(err)
	}
	sigTag := signature.SignatureTag(image.DigestStr())

	tampered := signWith(witness, image)
	tampered.Signature = append([]byte(nil), tampered.Signature...)
	tampered.Signature[len(tampered.Signature)/2] ^= 0xff
	otherImage := pushRandom(t, testRegistry(t), "app") // another digest
	elsewhere := signWith(witness, otherImage)
	elsewhere.Image = image // served under this image's signature tag

	for _, tc := range []struct {
		name   string
		served *sign.Signature // what the mirror holds in the image's signature tag; nil: nothing
		want   error           // nil: verified
	}{
		{"another key", signWith(other, image), ErrBadSignature},
		{"tampered", tampered, ErrBadSignature},
		{"the witness's signature of another image", elsewhere, ErrDigestMismatch},
		{"no signature on the mirror", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mirror := start()
			push(mirror.Host)
			if tc.served != nil {
				mrepo, _ := name.NewRepository(mirror.Host + "/app")
				if err := sign.AttachTo(t.Context(), tc.served, mrepo, tlsOpt); err != nil {
					t.Fatal(err)
				}
			}
			root := t.TempDir()
			dir := filepath.Join(root, strings.Replace(upstream.Host, ":", "_", 1)+"_")
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644)
			os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(fmt.Sprintf(`server = "https://%s"
ca = "ca.crt"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
`, upstream.Host, mirror.Host)), 0o644)
			before := len(upstream.Requests())

			c := registry.New(registry.Options{ConfigPath: root, Keychain: registry.Chain()})
			ms, err := NewRegistry(WithClient(c)).Fetch(t.Context(), image)
			if err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			res := Verify(image.DigestStr(), ms, []Key{witness.Key()})
			askedUpstream := false
			for _, q := range upstream.Requests()[before:] {
				askedUpstream = askedUpstream || strings.Contains(q, "/manifests/"+sigTag+" ")
			}
			if tc.want == nil {
				if !res.OK() || !askedUpstream {
					t.Fatalf("Verify = %+v, %v (upstream asked for the signature tag: %v); want the registry's signature verified", res, res.Err(), askedUpstream)
				}
				return
			}
			if res.OK() || len(res.Verified) != 0 || !errors.Is(res.Err(), tc.want) {
				t.Fatalf("Verify = %+v, %v; want not verified, %v", res, res.Err(), tc.want)
			}
			if askedUpstream {
				t.Errorf("the registry was asked for the signature tag after the mirror answered; discovery reads the first host that answers")
			}
			if got := mirror.Requests(); !strings.Contains(strings.Join(got, "\n"), "/manifests/"+sigTag+" ns="+upstream.Host) {
				t.Errorf("mirror got %v; want the signature tag asked with ns=%s", got, upstream.Host)
			}
		})
	}
}
