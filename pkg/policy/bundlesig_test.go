package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

func TestSignAndVerifyBundle(t *testing.T) {
	testKeys(t)
	data := bundleText(t, "7", true)
	k, _ := local.New(ecKeys[3], "")
	sig, err := SignBundle(t.Context(), data, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(data, sig, &ecKeys[3].PublicKey); err != nil {
		t.Fatalf("VerifyBundle of a fresh signature: %v", err)
	}
	rk, _ := local.New(testRSAKey(t), RSAPSSSHA256)
	rsig, err := SignBundle(t.Context(), data, rk)
	if err != nil {
		t.Fatal(err)
	}
	if doc, err := VerifyBundle(data, rsig, &testRSAKey(t).PublicKey); err != nil || doc.Algorithm != RSAPSSSHA256 {
		t.Fatalf("VerifyBundle(RSA-PSS) = %+v, %v", doc, err)
	}
	tampered := strings.Replace(string(sig), `"signature": "`, `"signature": "AAAA`, 1)
	for name, tc := range map[string]struct {
		data, sig []byte
		want      string
		is        error
	}{
		"unsigned":    {data, nil, "not signed", ErrUnsigned},
		"other key":   {data, rsig, "but the trusted bundle-signing key is", ErrBadSignature},
		"edited":      {append([]byte("# comment\n"), data...), sig, "edited after signing", ErrBadSignature},
		"garbage":     {data, []byte("{not json"), "cannot read the signature", ErrBadSignature},
		"extra field": {data, []byte(`{"apiVersion":"nri-csig.io/v1alpha1","kind":"BundleSignature","x":1}`), "unknown field", ErrBadSignature},
		"bad sig":     {data, []byte(tampered), "does not match", ErrBadSignature},
		"wrong kind":  {data, []byte(`{"apiVersion":"v1","kind":"Secret"}`), "want nri-csig.io/v1alpha1 BundleSignature", ErrBadSignature},
		"not base64":  {data, []byte(strings.Replace(string(sig), `"signature": "`, `"signature": "!`, 1)), "not base64", ErrBadSignature},
	} {
		_, err := VerifyBundle(tc.data, tc.sig, &ecKeys[3].PublicKey)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: VerifyBundle = %v; want %v containing %q", name, err, tc.is, tc.want)
		}
	}
}
