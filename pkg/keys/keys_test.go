package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/keys"
)

func TestVerifyDigestRefusals(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	sig, err := rsa.SignPKCS1v15(nil, rsaKey, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		pub    crypto.PublicKey
		alg    keys.Algorithm
		digest []byte
		sig    []byte
		class  error
	}{
		"good PKCS1, default alg":    {&rsaKey.PublicKey, "", d[:], sig, nil},
		"PKCS1 sig checked as PSS":   {&rsaKey.PublicKey, keys.RSAPSSSHA256, d[:], sig, keys.ErrInvalidSignature},
		"ECDSA alg on RSA key":       {&rsaKey.PublicKey, keys.ECDSASHA256, d[:], sig, keys.ErrUnsupportedKey},
		"RSA-1024 key":               {&weak.PublicKey, "", d[:], sig, keys.ErrUnsupportedKey},
		"P-384 key":                  {&p384.PublicKey, "", d[:], sig, keys.ErrUnsupportedKey},
		"truncated signature":        {&rsaKey.PublicKey, "", d[:], sig[:100], keys.ErrInvalidSignature},
		"digest that is not SHA-256": {&rsaKey.PublicKey, "", d[:20], sig, errors.New("32-byte")},
		"not a key":                  {"a string", "", d[:], sig, keys.ErrUnsupportedKey},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := keys.VerifyDigest(tc.pub, tc.alg, tc.digest, tc.sig)
			switch {
			case tc.class == nil && err != nil:
				t.Fatalf("VerifyDigest = %v; want nil", err)
			case tc.class == nil:
			case errors.Is(tc.class, keys.ErrInvalidSignature) || errors.Is(tc.class, keys.ErrUnsupportedKey):
				if !errors.Is(err, tc.class) {
					t.Fatalf("VerifyDigest = %v; want %v", err, tc.class)
				}
			case err == nil || !strings.Contains(err.Error(), tc.class.Error()):
				t.Fatalf("VerifyDigest = %v; want error containing %q", err, tc.class)
			}
		})
	}
}

func TestFingerprintAndPublicPEM(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	fp, err := keys.Fingerprint(&k.PublicKey)
	if err != nil || fp != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("Fingerprint = %q, %v; want sha256 of the DER SPKI", fp, err)
	}
	dir := t.TempDir()
	for name, block := range map[string]*pem.Block{
		"pkix.pub":  {Type: "PUBLIC KEY", Bytes: der},
		"pkcs1.pub": {Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o644); err != nil {
			t.Fatal(err)
		}
		pub, err := keyref.OpenPublic(t.Context(), p, keyref.Options{})
		if err != nil {
			t.Fatalf("OpenPublic(%s) = %v", name, err)
		}
		if got, _ := keys.Fingerprint(pub); got != fp {
			t.Errorf("OpenPublic(%s) fingerprint = %s; want %s", name, got, fp)
		}
	}
	out, err := keys.MarshalPublicKeyPEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	back, err := keys.ParsePublicKeyPEM(out)
	if err != nil || !k.PublicKey.Equal(back) {
		t.Fatalf("ParsePublicKeyPEM(MarshalPublicKeyPEM) = %v; want the same key", err)
	}
	if _, err := keys.ParsePublicKeyPEM([]byte("not pem")); err == nil {
		t.Error("ParsePublicKeyPEM(garbage) = nil error")
	}
	if _, err := keyref.Open(t.Context(), "", keyref.Options{}); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("Open(\"\") = %v; want an error naming --key", err)
	}
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := keys.MarshalPublicKeyPEM(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := keys.ParsePublicKeyPEM(data)
		if err != nil {
			return
		}
		// Anything accepted must be a key we can fingerprint and verify with.
		if _, err := keys.KeySpec(pub); err != nil {
			t.Fatalf("accepted a key KeySpec refuses: %v", err)
		}
		if _, err := keys.Fingerprint(pub); err != nil {
			t.Fatalf("accepted a key Fingerprint refuses: %v", err)
		}
	})
}

// TestKMSFakeIsTestOnly keeps the fake KMS (which holds private keys in memory
// and answers anyone) out of every non-test file.
func TestKMSFakeIsTestOnly(t *testing.T) {
	const fake = "github.com/nri-csig/nri-csig/pkg/keys/alikms/kmsfake"
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "kmsfake") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == fake {
				t.Errorf("%s imports %s; only tests may", path, fake)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
