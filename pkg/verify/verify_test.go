package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

func fetch(t *testing.T, image name.Digest) []signature.Manifest {
	t.Helper()
	ms, err := NewRegistry().Fetch(t.Context(), image)
	if err != nil {
		t.Fatalf("Fetch(%s) error = %v", image, err)
	}
	return ms
}

func TestSignAndVerifyLegacy(t *testing.T) {
	host := testRegistry(t)
	signers := map[string]*testSigner{
		"rsa pkcs1": newRSA(t, "rsa-a"),
		"ecdsa":     newECDSA(t, "ec"),
		"rsa pss":   {name: "rsa-pss", key: newRSA(t, "rsa-b").key, pss: true},
	}
	for name, s := range signers {
		t.Run(name, func(t *testing.T) {
			image := pushRandom(t, host, "app-"+strings.ReplaceAll(name, " ", "-"))
			signLegacy(t, s, image)
			res := Verify(image.DigestStr(), fetch(t, image), []Key{s.Key()})
			if !res.OK() {
				t.Fatalf("Verify() = %+v; want verified (err %v)", res, res.Err())
			}
			if m := res.Verified[0]; m.Key != s.name || m.Digest != image.DigestStr() || m.Format != FormatLegacy {
				t.Fatalf("Verify() match = %+v", m)
			}
		})
	}
}

func TestSignAppendsKeepsOtherSigners(t *testing.T) {
	host := testRegistry(t)
	image := pushRandom(t, host, "app")
	a, b := newRSA(t, "rsa-a"), newECDSA(t, "ec")
	signLegacy(t, a, image)
	signLegacy(t, b, image)
	signLegacy(t, a, image) // idempotent for the same signature bytes? RSA PKCS#1 is deterministic.
	ms := fetch(t, image)
	res := Verify(image.DigestStr(), ms, []Key{a.Key(), b.Key()})
	if got := res.Keys(); len(got) != 2 {
		t.Fatalf("Verify().Keys() = %v; want both signers", got)
	}
	m, err := signature.ParseManifest(ms[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("signature manifest has %d layers; want 2 (re-signing with the same key is a no-op)", len(m.Layers))
	}
}

func TestVerifyBundle(t *testing.T) {
	for _, referrersAPI := range []bool{false, true} {
		t.Run(fmt.Sprintf("referrers API %v", referrersAPI), func(t *testing.T) {
			host := testRegistry(t, ggcrregistry.WithReferrersSupport(referrersAPI))
			image := pushRandom(t, host, "app")
			s := newECDSA(t, "ec")
			attachBundle(t, image, types.DockerManifestSchema2, 100, makeBundle(t, s, image.DigestStr()))
			res := Verify(image.DigestStr(), fetch(t, image), []Key{s.Key()})
			if !res.OK() || res.Verified[0].Format != FormatBundle {
				t.Fatalf("Verify() = %+v; want verified bundle (err %v)", res, res.Err())
			}
			// A bundle whose statement names another image does not verify here.
			other := pushRandom(t, host, "other")
			attachBundle(t, other, types.DockerManifestSchema2, 100, makeBundle(t, s, image.DigestStr()))
			res = Verify(other.DigestStr(), fetch(t, other), []Key{s.Key()})
			if res.OK() || !errors.Is(res.Err(), ErrDigestMismatch) {
				t.Fatalf("Verify(bundle for another digest) = %+v, %v; want ErrDigestMismatch", res, res.Err())
			}
		})
	}
}

// TestBadInput holds the bad-input cases of issue 3: each is refused with
// its own reason and none verifies.
func TestBadInput(t *testing.T) {
	host := testRegistry(t)
	key := newRSA(t, "rsa-a")
	otherKey := newRSA(t, "rsa-other")

	legacy := func(payload []byte, sigB64 string) signature.Manifest {
		d := signature.DigestOf(payload)
		raw, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"config":        map[string]any{},
			"layers": []any{map[string]any{
				"mediaType": signature.SimpleSigningMediaType, "digest": d, "size": len(payload),
				"annotations": map[string]string{signature.SignatureAnnotation: sigB64},
			}},
		})
		return signature.Manifest{Source: "test", Raw: raw, Blobs: map[string][]byte{d: payload}}
	}
	signB64 := func(b []byte) string {
		sum := sha256.Sum256(b)
		sig, err := key.SignDigest(context.Background(), sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	image := pushRandom(t, host, "app")
	digest := image.DigestStr()
	otherImage := pushRandom(t, host, "other")
	payloadFor := func(d string) []byte {
		p, _ := signature.NewPayload(d, "x", nil)
		b, _ := p.Marshal()
		return b
	}

	tests := map[string]struct {
		manifests func(t *testing.T) []signature.Manifest
		want      error
	}{
		"unsigned image": {
			manifests: func(t *testing.T) []signature.Manifest { return fetch(t, image) },
			want:      ErrNoSignatures,
		},
		"signed by another key": {
			manifests: func(t *testing.T) []signature.Manifest {
				img := pushRandom(t, host, "by-other")
				signLegacy(t, otherKey, img)
				digest := img.DigestStr()
				ms := fetch(t, img)
				return rebind(t, ms, digest, image.DigestStr())
			},
			want: ErrBadSignature,
		},
		"signature copied onto another image": {
			manifests: func(t *testing.T) []signature.Manifest {
				signLegacy(t, key, otherImage)
				// Copy the .sig manifest of otherImage to image's tag, as an attacker would.
				src := otherImage.Context().Tag(signature.SignatureTag(otherImage.DigestStr()))
				dst := image.Context().Tag(signature.SignatureTag(digest))
				d, err := remote.Get(src, remoteOpts()...)
				if err != nil {
					t.Fatal(err)
				}
				if err := remote.Put(dst, d, remoteOpts()...); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = remote.Delete(dst, remoteOpts()...) })
				return fetch(t, image)
			},
			want: ErrDigestMismatch,
		},
		"payload digest mismatch": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := payloadFor(otherImage.DigestStr())
				return []signature.Manifest{legacy(p, signB64(p))}
			},
			want: ErrDigestMismatch,
		},
		"corrupt base64": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := payloadFor(digest)
				return []signature.Manifest{legacy(p, "!!not base64!!")}
			},
			want: signature.ErrMalformed,
		},
		"corrupt JSON, validly signed": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := []byte(`{"critical":{"image":`)
				return []signature.Manifest{legacy(p, signB64(p))}
			},
			want: signature.ErrMalformed,
		},
		"wrong type, validly signed": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := []byte(strings.Replace(string(payloadFor(digest)), signature.CosignType, "atomic container signature", 1))
				return []signature.Manifest{legacy(p, signB64(p))}
			},
			want: signature.ErrWrongType,
		},
		"tampered payload": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := payloadFor(otherImage.DigestStr())
				sig := signB64(p)
				return []signature.Manifest{legacy(payloadFor(digest), sig)}
			},
			want: ErrBadSignature,
		},
		"manifest with 1000 layers": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := payloadFor(digest)
				m := legacy(p, signB64(p))
				var doc map[string]any
				_ = json.Unmarshal(m.Raw, &doc)
				layer := doc["layers"].([]any)[0]
				layers := make([]any, 1000)
				for i := range layers {
					layers[i] = layer
				}
				doc["layers"] = layers
				m.Raw, _ = json.Marshal(doc)
				return []signature.Manifest{m}
			},
			want: signature.ErrTooMany,
		},
		"blob missing": {
			manifests: func(t *testing.T) []signature.Manifest {
				p := payloadFor(digest)
				m := legacy(p, signB64(p))
				m.Blobs = nil
				return []signature.Manifest{m}
			},
			want: ErrMissingBlob,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := Verify(digest, tc.manifests(t), []Key{key.Key()})
			if res.OK() {
				t.Fatalf("Verify() = %+v; want not verified", res)
			}
			if err := res.Err(); !errors.Is(err, tc.want) {
				t.Fatalf("Verify().Err() = %v; want %v", err, tc.want)
			}
		})
	}
}

// rebind moves manifests found for digest from to image digest to, as if an
// attacker had pushed them there (the payload still names from).
func rebind(t *testing.T, ms []signature.Manifest, from, to string) []signature.Manifest {
	t.Helper()
	for i := range ms {
		ms[i].Source = strings.Replace(ms[i].Source, signature.FallbackTag(from), signature.FallbackTag(to), 1)
	}
	return ms
}

func TestRegistryUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a closed port: connection refused
	image, err := name.NewDigest(addr + "/app@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewRegistry().Fetch(t.Context(), image)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Fetch(closed port) error = %v; want ErrUnavailable", err)
	}
}

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	image, err := name.NewDigest("192.168.0.1:5000/app@sha256:"+strings.Repeat("ab", 32), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err = NewRegistry().Fetch(ctx, image)
	if err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("Fetch(http://192.168.0.1) error = %v; want a refusal of plain HTTP", err)
	}
}

func TestDirStore(t *testing.T) {
	host := testRegistry(t)
	image := pushRandom(t, host, "app")
	a, b := newRSA(t, "rsa-a"), newECDSA(t, "ec")
	signLegacy(t, a, image)
	attachBundle(t, image, types.DockerManifestSchema2, 100, makeBundle(t, b, image.DigestStr()))

	dir := NewDir(t.TempDir())
	if err := dir.Put(image, fetch(t, image)); err != nil {
		t.Fatal(err)
	}
	// The store is keyed by digest only: another repository name finds them.
	elsewhere, err := name.NewDigest("example.com/mirror/app@" + image.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	ms, err := dir.Fetch(t.Context(), elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	res := Verify(image.DigestStr(), ms, []Key{a.Key(), b.Key()})
	if got := res.Keys(); len(got) != 2 {
		t.Fatalf("Verify(from dir).Keys() = %v (failures %+v); want both keys", got, res.Failures)
	}
	other := pushRandom(t, host, "other")
	if ms, err := dir.Fetch(t.Context(), other); err != nil || len(ms) != 0 {
		t.Fatalf("Fetch(unsigned) = %d manifests, %v; want none", len(ms), err)
	}
}

func TestOversizedManifestAndLayer(t *testing.T) {
	host := testRegistry(t)
	image := pushRandom(t, host, "app")
	key := newRSA(t, "rsa-a")
	// A signature manifest over MaxManifestSize is not downloaded.
	big := `{"schemaVersion":2,"config":{},"layers":[],"annotations":{"pad":"` + strings.Repeat("x", signature.MaxManifestSize) + `"}}`
	tag := image.Context().Tag(signature.SignatureTag(image.DigestStr()))
	if err := remote.Put(tag, rawManifest{raw: []byte(big), mt: types.OCIManifestSchema1}, remoteOpts()...); err != nil {
		t.Fatal(err)
	}
	res := Verify(image.DigestStr(), fetch(t, image), []Key{key.Key()})
	if err := res.Err(); res.OK() || !errors.Is(err, signature.ErrMalformed) || !strings.Contains(err.Error(), "bytes, more than") {
		t.Fatalf("Verify(oversized manifest) = %v; want a size refusal", err)
	}
	// A layer that declares more than the payload cap is refused by size.
	p, _ := signature.NewPayload(image.DigestStr(), "x", nil)
	b, _ := p.Marshal()
	d := signature.DigestOf(b)
	raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": map[string]any{}, "layers": []any{map[string]any{
		"mediaType": signature.SimpleSigningMediaType, "digest": d, "size": 1 << 30,
		"annotations": map[string]string{signature.SignatureAnnotation: "AAAA"}}}})
	res = Verify(image.DigestStr(), []signature.Manifest{{Source: "t", Raw: raw, Blobs: map[string][]byte{d: b}}}, []Key{key.Key()})
	if err := res.Err(); !errors.Is(err, signature.ErrMalformed) || !strings.Contains(err.Error(), "declares") {
		t.Fatalf("Verify(oversized layer) = %v; want a size refusal", err)
	}
}
