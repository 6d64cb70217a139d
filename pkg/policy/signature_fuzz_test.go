package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

// A signature document that is not one JSON object is refused with a
// message that says so (json would read null as an empty document).
func TestVerifyBundleNotAnObject(t *testing.T) {
	testKeys(t)
	data := bundleText(t, "7", true)
	k, _ := local.New(ecKeys[3], "")
	sig, err := SignBundle(t.Context(), data, k)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ sig, want string }{
		"null":     {"null\n", `not a JSON object (it starts with "null")`},
		"array":    {`[{"kind":"BundleSignature"}]`, "not a JSON object"},
		"string":   {`"sig"`, "not a JSON object"},
		"trailing": {string(sig) + `{"kind":"x"}`, "data after its JSON object"},
	} {
		_, err := VerifyBundle(data, []byte(tc.sig), &ecKeys[3].PublicKey)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: VerifyBundle = %v; want ErrBadSignature containing %q", name, err, tc.want)
		}
	}
	if _, err := VerifyBundle(data, append(sig, "\n\n"...), &ecKeys[3].PublicKey); err != nil {
		t.Fatalf("trailing whitespace refused: %v", err)
	}
}

// FuzzVerifyBundle feeds arbitrary signature documents (read from the bundle
// source, which a node does not trust) to VerifyBundle. It must never panic,
// every refusal must say why, and an accepted document must be a valid
// signature of exactly these bundle bytes by the trusted key.
func FuzzVerifyBundle(f *testing.F) {
	testKeys(f)
	data := bundleText(f, "7", true)
	k, _ := local.New(ecKeys[3], "")
	sig, err := SignBundle(f.Context(), data, k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add([]byte("null"))
	f.Add([]byte(`{"apiVersion":"nri-csig.io/v1alpha1","kind":"BundleSignature","signature":"AAAA"}`))
	f.Add([]byte(strings.Replace(string(sig), `"signature": "`, `"signature": "AAAA`, 1)))
	want := BundleDigest(data)
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := VerifyBundle(data, doc, &ecKeys[3].PublicKey)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnsigned) {
				t.Fatalf("refusal without a class: %v", err)
			}
			if len(strings.TrimSpace(strings.TrimPrefix(err.Error(), ErrBadSignature.Error()+":"))) == 0 {
				t.Fatalf("empty refusal: %q", err)
			}
			return
		}
		if got.BundleDigest != want || got.Kind != KindBundleSignature {
			t.Fatalf("accepted a document for %s (%s)", got.BundleDigest, got.Kind)
		}
	})
}
