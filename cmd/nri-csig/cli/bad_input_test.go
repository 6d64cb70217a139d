//go:build !nodeonly

package cli

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/keys/local"
	"github.com/nri-csig/nri-csig/pkg/signature"
)

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// putSig writes a hand-made cosign signature manifest for digest: layers
// copies of one layer holding payload with the signature annotation sigB64.
func putSig(t *testing.T, repo name.Repository, digest string, payload []byte, sigB64 string, layers int) {
	t.Helper()
	l := static.NewLayer(payload, signature.SimpleSigningMediaType)
	if err := remote.WriteLayer(repo, l); err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte("{}"), types.OCIConfigJSON)
	if err := remote.WriteLayer(repo, cfg); err != nil {
		t.Fatal(err)
	}
	ld, _ := l.Digest()
	cd, _ := cfg.Digest()
	desc := map[string]any{"mediaType": signature.SimpleSigningMediaType, "digest": ld.String(), "size": len(payload),
		"annotations": map[string]string{signature.SignatureAnnotation: sigB64}}
	ls := make([]any, layers)
	for i := range ls {
		ls[i] = desc
	}
	raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": map[string]any{"mediaType": types.OCIConfigJSON, "digest": cd.String(), "size": 2}, "layers": ls})
	if err := remote.Put(repo.Tag(signature.SignatureTag(digest)), rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyBadInput: each bad input of issue 3 is refused with exit 1 and
// a reason that says what is wrong; none verifies.
func TestVerifyBadInput(t *testing.T) {
	host := startRegistry(t)
	priv, pub := genKey(t, "witness")
	pemBytes, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	key, err := local.ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	signB64 := func(b []byte) string {
		sum := sha256.Sum256(b)
		sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	payloadFor := func(d string) []byte {
		p, _ := signature.NewPayload(d, "x", nil)
		b, _ := p.Marshal()
		return b
	}
	otherTag := host + "/other:v1"
	otherDigest := push(t, otherTag, randomImage(t))
	if out, code := runCLI(t, "sign", "--key", priv, otherTag); code != 0 {
		t.Fatalf("sign: %s", out)
	}

	tests := map[string]struct {
		setup func(repo name.Repository, digest string)
		want  string
	}{
		"signature copied from another image": {
			setup: func(repo name.Repository, digest string) {
				src, _ := name.ParseReference(host + "/other:" + signature.SignatureTag(otherDigest))
				d, err := remote.Get(src)
				if err != nil {
					t.Fatal(err)
				}
				// Blobs must exist in the target repository too.
				for _, l := range mustLayers(t, d) {
					if err := remote.WriteLayer(repo, l); err != nil {
						t.Fatal(err)
					}
				}
				if err := remote.Put(repo.Tag(signature.SignatureTag(digest)), d); err != nil {
					t.Fatal(err)
				}
			},
			want: "covers another image digest: payload names " + otherDigest,
		},
		"payload digest mismatch": {
			setup: func(repo name.Repository, digest string) {
				p := payloadFor(otherDigest)
				putSig(t, repo, digest, p, signB64(p), 1)
			},
			want: "covers another image digest",
		},
		"corrupt base64": {
			setup: func(repo name.Repository, digest string) {
				putSig(t, repo, digest, payloadFor(digest), "%%%not-base64%%%", 1)
			},
			want: "corrupt base64",
		},
		"corrupt JSON": {
			setup: func(repo name.Repository, digest string) {
				p := []byte(`{"critical":{"identity":`)
				putSig(t, repo, digest, p, signB64(p), 1)
			},
			want: "invalid JSON",
		},
		"1000 layers": {
			setup: func(repo name.Repository, digest string) {
				p := payloadFor(digest)
				putSig(t, repo, digest, p, signB64(p), 1000)
			},
			want: "1000 layers, at most 256",
		},
		"signed by another key": {
			setup: func(repo name.Repository, digest string) {
				otherPriv, _ := genKey(t, "other")
				if out, code := runCLI(t, "sign", "--key", otherPriv, repo.Digest(digest).String()); code != 0 {
					t.Fatalf("sign: %s", out)
				}
			},
			want: "not made by any of the keys",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			repo := strings.ToLower(strings.NewReplacer(" ", "-").Replace(name))
			tag := host + "/" + repo + ":v1"
			digest := push(t, tag, randomImage(t))
			r, _ := nameRepo(tag)
			tc.setup(r, digest)
			out, code := runCLI(t, "verify", "--key", pub, tag)
			if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, "Verified") {
				t.Fatalf("verify = %d, %q; want exit 1 and %q", code, out, tc.want)
			}
		})
	}
}

func nameRepo(ref string) (name.Repository, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return name.Repository{}, err
	}
	return r.Context(), nil
}

func mustLayers(t *testing.T, d *remote.Descriptor) []v1.Layer {
	t.Helper()
	img, err := d.Image()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return append(ls, static.NewLayer(cfg, types.OCIConfigJSON))
}
