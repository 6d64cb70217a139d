package local_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
)

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pkcs8(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		typ      string
		der      []byte
		alg      keys.Algorithm
		wantAlg  keys.Algorithm
		wantSpec string
	}{
		"rsa pkcs1 file default alg": {"RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), "", keys.RSAPKCS1SHA256, "RSA_2048"},
		"rsa pkcs8 pss":              {"PRIVATE KEY", pkcs8(t, rsaKey), keys.RSAPSSSHA256, keys.RSAPSSSHA256, "RSA_2048"},
		"ec sec1":                    {"EC PRIVATE KEY", ecDER, "", keys.ECDSASHA256, "EC_P256"},
		"ec pkcs8":                   {"PRIVATE KEY", pkcs8(t, ecKey), keys.ECDSASHA256, keys.ECDSASHA256, "EC_P256"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ref := "file://" + writePEM(t, tc.typ, tc.der)
			s, err := keyref.Open(t.Context(), ref, keyref.Options{Algorithm: tc.alg})
			if err != nil {
				t.Fatalf("Open(%q) = %v", ref, err)
			}
			info := s.Info()
			if info.Provider != "local" || info.Algorithm != tc.wantAlg || info.KeySpec != tc.wantSpec || info.Ref != ref {
				t.Fatalf("Info() = %+v; want local %s %s", info, tc.wantSpec, tc.wantAlg)
			}
			digest := sha256.Sum256([]byte("payload"))
			sig, err := s.SignDigest(t.Context(), digest[:])
			if err != nil {
				t.Fatal(err)
			}
			pub, err := s.PublicKey(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := keys.VerifyDigest(pub, info.Algorithm, digest[:], sig); err != nil {
				t.Fatalf("VerifyDigest = %v", err)
			}
			other := sha256.Sum256([]byte("other payload"))
			if err := keys.VerifyDigest(pub, info.Algorithm, other[:], sig); !errors.Is(err, keys.ErrInvalidSignature) {
				t.Fatalf("VerifyDigest(other digest) = %v; want ErrInvalidSignature", err)
			}
			// Cross-check with the standard library, not only our own primitive.
			switch info.Algorithm {
			case keys.RSAPKCS1SHA256:
				err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig)
			case keys.RSAPSSSHA256:
				err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			case keys.ECDSASHA256:
				if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
					err = errors.New("ecdsa.VerifyASN1 failed")
				}
			}
			if err != nil {
				t.Fatalf("stdlib verify: %v", err)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&rsa2048.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		typ, alg string
		der      []byte
		want     string
		class    error
	}{
		"rsa 1024":          {typ: "RSA PRIVATE KEY", der: x509.MarshalPKCS1PrivateKey(rsa1024), want: "RSA key of 1024 bits is too weak", class: keys.ErrUnsupportedKey},
		"p-384":             {typ: "PRIVATE KEY", der: pkcs8(t, p384), want: "only P-256", class: keys.ErrUnsupportedKey},
		"ed25519":           {typ: "PRIVATE KEY", der: pkcs8(t, ed), want: "RSA_2048", class: keys.ErrUnsupportedKey},
		"cosign encrypted":  {typ: "ENCRYPTED SIGSTORE PRIVATE KEY", der: []byte("x"), want: "cosign's encrypted key format is not supported"},
		"pkcs8 encrypted":   {typ: "ENCRYPTED PRIVATE KEY", der: []byte("x"), want: "decrypt it first"},
		"public key":        {typ: "PUBLIC KEY", der: spki, want: "signing needs the private key"},
		"pss on ec":         {typ: "PRIVATE KEY", der: pkcs8(t, mustEC(t)), alg: "RSA_PSS_SHA_256", want: "needs an RSA key", class: keys.ErrUnsupportedKey},
		"unknown algorithm": {typ: "PRIVATE KEY", der: pkcs8(t, rsa2048), alg: "RSA_PSS_SHA_512", want: "unknown signature algorithm"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := writePEM(t, tc.typ, tc.der)
			_, err := keyref.Open(t.Context(), p, keyref.Options{Algorithm: keys.Algorithm(tc.alg)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%s) = %v; want error containing %q", name, err, tc.want)
			}
			if tc.class != nil && !errors.Is(err, tc.class) {
				t.Fatalf("Open(%s) = %v; want errors.Is %v", name, err, tc.class)
			}
		})
	}
	if _, err := keyref.Open(t.Context(), filepath.Join(t.TempDir(), "missing.pem"), keyref.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v; want ErrNotExist", err)
	}
	if _, err := keyref.Open(t.Context(), "awskms:///alias/x", keyref.Options{}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Open(awskms) = %v; want unsupported scheme", err)
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerate(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "dev")
	privPath, pubPath, err := local.Generate(prefix)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(privPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v; want 0600", st.Mode().Perm())
	}
	s, err := keyref.Open(t.Context(), privPath, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Info().KeySpec != "RSA_2048" {
		t.Errorf("KeySpec = %s; want RSA_2048", s.Info().KeySpec)
	}
	pub, err := keyref.OpenPublic(t.Context(), pubPath, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fromPriv, err := keyref.OpenPublic(t.Context(), privPath, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := keys.Fingerprint(pub)
	f2, _ := keys.Fingerprint(fromPriv)
	if f1 != f2 || !strings.HasPrefix(f1, "sha256:") || len(f1) != len("sha256:")+64 {
		t.Errorf("fingerprints %q and %q; want equal sha256:<64 hex>", f1, f2)
	}
	if _, _, err := local.Generate(prefix); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("Generate(existing) = %v; want refusal", err)
	}
}

func BenchmarkLocalSign(b *testing.B) {
	for _, alg := range []keys.Algorithm{keys.RSAPKCS1SHA256, keys.RSAPSSSHA256} {
		b.Run(string(alg), func(b *testing.B) {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				b.Fatal(err)
			}
			s, err := local.New(k, alg)
			if err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("payload"))
			for b.Loop() {
				if _, err := s.SignDigest(b.Context(), digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
