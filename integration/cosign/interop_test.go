//go:build integration

package cosign

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// report is the part of "nri-csig verify -o json" read here.
type report struct {
	Digest   string `json:"digest"`
	Verified bool   `json:"verified"`
	Result   struct {
		Verified []struct {
			Key    string `json:"key"`
			Format string `json:"format"`
			Digest string `json:"digest"`
		} `json:"verified"`
		Failures []struct {
			Reason string `json:"reason"`
		} `json:"failures"`
	} `json:"result"`
	Platforms []struct {
		Platform string `json:"platform"`
		Result   struct {
			Digest   string `json:"digest"`
			Verified []struct {
				Key string `json:"key"`
			} `json:"verified"`
		} `json:"result"`
	} `json:"platforms"`
}

func verifyJSON(t *testing.T, args ...string) (report, cmdResult) {
	t.Helper()
	r := csig(t, append([]string{"verify", "-o", "json"}, args...)...)
	var rep report
	js := r.out
	if i := strings.LastIndex(js, "\n}"); i >= 0 {
		js = js[:i+2]
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("nri-csig verify %v: exit %d, output not JSON (%v):\n%s", args, r.code, err, r.out)
	}
	return rep, r
}

func localKey(t *testing.T) (priv, pub string) {
	t.Helper()
	priv, pub, err := local.Generate(filepath.Join(t.TempDir(), "witness"))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// TestCosignVerifiesOurs: "cosign verify --key" accepts what "nri-csig sign" made.
func TestCosignVerifiesOurs(t *testing.T) {
	host := startRegistry(t, false)
	priv, pub := localKey(t)
	tag, digestRef := pushImage(t, host, "ours", randomImage(t))

	if r := csig(t, "sign", "--key", priv, "--annotation", "team=platform", tag); r.code != 0 {
		t.Fatalf("nri-csig sign: exit %d\n%s", r.code, r.out)
	}
	r := cosign(t, append(cosignVerifyFlags, "--key", pub, digestRef)...)
	if r.code != 0 {
		t.Fatalf("cosign verify (our RSA signature): exit %d\n%s", r.code, r.out)
	}
	d := digestRef[strings.Index(digestRef, "@")+1:]
	if !strings.Contains(r.out, d) || !strings.Contains(r.out, `"team":"platform"`) {
		t.Fatalf("cosign verify output does not name %s and the annotation:\n%s", d, r.out)
	}
	// Another key: cosign refuses too.
	_, otherPub := localKey(t)
	if r := cosign(t, append(cosignVerifyFlags, "--key", otherPub, digestRef)...); r.code == 0 {
		t.Fatalf("cosign verify with another key succeeded:\n%s", r.out)
	}
}

// TestWeVerifyCosign: nri-csig verifies what "cosign sign --key" made, for an
// ECDSA (generate-key-pair) and an RSA (import-key-pair) key, in the legacy
// tag format and the bundle format, with and without the referrers API.
func TestWeVerifyCosign(t *testing.T) {
	for _, kind := range []string{"ecdsa", "rsa"} {
		priv, pub := cosignKeyPair(t, kind)
		for _, format := range []string{"legacy", "bundle"} {
			for _, referrersAPI := range []bool{false, true} {
				if format == "legacy" && referrersAPI {
					continue // the legacy format does not use referrers
				}
				name := kind + "/" + format
				if format == "bundle" {
					if referrersAPI {
						name += "/referrers-api"
					} else {
						name += "/tag-fallback"
					}
				}
				t.Run(name, func(t *testing.T) {
					host := startRegistry(t, referrersAPI)
					tag, digestRef := pushImage(t, host, "theirs", randomImage(t))
					args := append(append([]string{}, cosignSignFlags...), "--key", priv)
					if format == "legacy" {
						args = append(args, "--new-bundle-format=false")
					}
					if r := cosign(t, append(args, digestRef)...); r.code != 0 {
						t.Fatalf("cosign sign: exit %d\n%s", r.code, r.out)
					}
					// cosign itself accepts it (sanity check of the setup).
					if r := cosign(t, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code != 0 {
						t.Fatalf("cosign verify (its own signature): exit %d\n%s", r.code, r.out)
					}
					rep, r := verifyJSON(t, "--key", pub, tag)
					if r.code != 0 || !rep.Verified {
						t.Fatalf("nri-csig verify: exit %d\n%s", r.code, r.out)
					}
					want := map[string]string{"legacy": "cosign-simplesigning", "bundle": "sigstore-bundle"}[format]
					if got := rep.Result.Verified[0].Format; got != want {
						t.Fatalf("verified format = %q; want %q", got, want)
					}
					// Another key does not verify it; exit 1.
					_, otherPub := localKey(t)
					if r := csig(t, "verify", "--key", otherPub, tag); r.code != 1 {
						t.Fatalf("nri-csig verify with another key: exit %d; want 1\n%s", r.code, r.out)
					}
				})
			}
		}
	}
}

// TestBothSigners: cosign and nri-csig signatures of one image live side by
// side in the .sig tag; each tool verifies each key.
func TestBothSigners(t *testing.T) {
	host := startRegistry(t, false)
	cPriv, cPub := cosignKeyPair(t, "ecdsa")
	oPriv, oPub := localKey(t)
	tag, digestRef := pushImage(t, host, "both", randomImage(t))

	if r := cosign(t, append(cosignSignFlags, "--key", cPriv, "--new-bundle-format=false", digestRef)...); r.code != 0 {
		t.Fatalf("cosign sign: %s", r.out)
	}
	if r := csig(t, "sign", "--key", oPriv, tag); r.code != 0 {
		t.Fatalf("nri-csig sign: %s", r.out)
	}
	for _, pub := range []string{cPub, oPub} {
		if r := cosign(t, append(cosignVerifyFlags, "--key", pub, digestRef)...); r.code != 0 {
			t.Errorf("cosign verify --key %s: exit %d\n%s", filepath.Base(pub), r.code, r.out)
		}
	}
	rep, r := verifyJSON(t, "--key", cPub, "--key", oPub, tag)
	if r.code != 0 || len(rep.Result.Verified) != 2 {
		t.Fatalf("nri-csig verify with both keys: exit %d, %d verified; want 2\n%s", r.code, len(rep.Result.Verified), r.out)
	}
}

// TestMultiPlatform: cosign signs an index and, separately, one platform
// manifest; nri-csig verify reports which digest each signature covers.
func TestMultiPlatform(t *testing.T) {
	host := startRegistry(t, false)
	cPriv, cPub := cosignKeyPair(t, "ecdsa")
	oPriv, oPub := localKey(t)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	ref, err := name.ParseReference(host + "/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	armDigest, _ := arm.Digest()
	amdDigest, _ := amd.Digest()
	armRef := ref.Context().Digest(armDigest.String()).String()
	idxRef := ref.Context().Digest(idxDigest.String()).String()

	// cosign signs only the arm64 manifest; nri-csig signs the index.
	if r := cosign(t, append(cosignSignFlags, "--key", cPriv, "--new-bundle-format=false", armRef)...); r.code != 0 {
		t.Fatalf("cosign sign arm64: %s", r.out)
	}
	if r := csig(t, "sign", "--key", oPriv, ref.String()); r.code != 0 || !strings.Contains(r.out, "Signed index "+idxDigest.String()) {
		t.Fatalf("nri-csig sign index: exit %d\n%s", r.code, r.out)
	}
	rep, r := verifyJSON(t, "--key", cPub, "--key", oPub, ref.String())
	if r.code != 0 || rep.Digest != idxDigest.String() || rep.Result.Verified[0].Key != oPub || rep.Result.Verified[0].Digest != idxDigest.String() {
		t.Fatalf("verify index: exit %d, report %+v\n%s", r.code, rep, r.out)
	}
	got := map[string]int{}
	for _, p := range rep.Platforms {
		got[p.Platform+" "+p.Result.Digest] = len(p.Result.Verified)
	}
	if got["linux/arm64 "+armDigest.String()] != 1 || got["linux/amd64 "+amdDigest.String()] != 0 {
		t.Fatalf("platform reports = %v; want arm64 signed once, amd64 unsigned", got)
	}
	// cosign sees the index signature made here, and its own on arm64.
	if r := cosign(t, append(cosignVerifyFlags, "--key", oPub, idxRef)...); r.code != 0 {
		t.Fatalf("cosign verify index: %s", r.out)
	}
	// nri-csig signs one platform manifest with --platform; cosign verifies it.
	if r := csig(t, "sign", "--key", oPriv, "--platform", "linux/amd64", ref.String()); r.code != 0 || !strings.Contains(r.out, amdDigest.String()) {
		t.Fatalf("nri-csig sign --platform: %s", r.out)
	}
	amdRef := ref.Context().Digest(amdDigest.String()).String()
	if r := cosign(t, append(cosignVerifyFlags, "--key", oPub, amdRef)...); r.code != 0 {
		t.Fatalf("cosign verify amd64: %s", r.out)
	}
}

// TestUnreachableRegistry: both tools fail, nri-csig with exit 2 and a clear error.
func TestUnreachableRegistry(t *testing.T) {
	_, pub := localKey(t)
	r := csig(t, "verify", "--key", pub, "127.0.0.1:1/app:v1")
	if r.code != 2 || !strings.Contains(r.out, "unavailable") || strings.Contains(r.out, "Verified") {
		t.Fatalf("nri-csig verify (closed port): exit %d; want 2 and a clear error\n%s", r.code, r.out)
	}
}
