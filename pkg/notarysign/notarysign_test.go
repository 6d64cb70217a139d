package notarysign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/keys/local"
	"github.com/nri-csig/nri-csig/pkg/notaryverify"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

var subject = pkix.Name{Country: []string{"CN"}, Province: []string{"Zhejiang"}, Organization: []string{"Example"}, CommonName: "release"}

const identity = "x509.subject: C=CN, ST=Zhejiang, O=Example, CN=release"

func signer(t *testing.T, priv crypto.Signer, alg keys.Algorithm) keys.Signer {
	t.Helper()
	k, err := local.New(priv, alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func witness(t *testing.T, ca *x509test.CA) *notaryverify.Verifier {
	t.Helper()
	v, err := notaryverify.New(&policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{identity}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignedEnvelopesVerify(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 321}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  crypto.Signer
		alg  keys.Algorithm
	}{{"RSA 2048 PSS", rsaKey, keys.RSAPSSSHA256}, {"EC P-256", ecKey, keys.ECDSASHA256}} {
		t.Run(c.name, func(t *testing.T) {
			cert := ca.Issue(t, subject, c.key.Public(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
			env, err := Sign(context.Background(), signer(t, c.key, c.alg), []*x509.Certificate{cert, ca.Cert}, desc, "nri-csig test")
			if err != nil {
				t.Fatal(err)
			}
			if err := witness(t, ca).VerifyEnvelope(desc.Digest.String(), signature.JWSMediaType, env); err != nil {
				t.Fatalf("notaryverify: %v", err)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 321}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := func(pub crypto.PublicKey) []*x509.Certificate {
		return []*x509.Certificate{ca.Issue(t, subject, pub, time.Now().Add(-time.Minute), time.Now().Add(time.Hour)), ca.Cert}
	}
	for _, c := range []struct {
		name  string
		s     keys.Signer
		chain []*x509.Certificate
		want  string
	}{
		{"RSA with PKCS#1 v1.5", signer(t, rsaKey, keys.RSAPKCS1SHA256), valid(rsaKey.Public()), "signs RSA keys with PSS"},
		{"RSA 3072", signer(t, rsa3072, keys.RSAPSSSHA256), valid(rsa3072.Public()), "SHA-384 or SHA-512"},
		{"another key's certificate", signer(t, ecKey, keys.ECDSASHA256), valid(rsaKey.Public()), "holds another public key"},
		{"no chain", signer(t, ecKey, keys.ECDSASHA256), nil, "no certificate chain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Sign(context.Background(), c.s, c.chain, desc, "test")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// Attach stores the signature as notation does: found as a referrer with
// the referrers API, and through the sha256-<hex> tag without it.
func TestAttachIsFoundWithAndWithoutTheReferrersAPI(t *testing.T) {
	ca := x509test.NewCA(t, "release CA")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain := []*x509.Certificate{ca.Issue(t, subject, ecKey.Public(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour)), ca.Cert}
	for _, referrers := range []bool{true, false} {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrers)))
		u, _ := url.Parse(srv.URL)
		img, _ := random.Image(64, 1)
		tag, _ := name.ParseReference(u.Host + "/app:v1")
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		image := tag.Context().Digest(d.String())
		head, err := remote.Head(image)
		if err != nil {
			t.Fatal(err)
		}
		env, err := Sign(context.Background(), signer(t, ecKey, keys.ECDSASHA256), chain,
			ocispec.Descriptor{MediaType: string(head.MediaType), Digest: digest.Digest(d.String()), Size: head.Size}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Attach(context.Background(), image, *head, env, chain); err != nil {
			t.Fatal(err)
		}
		_, tagErr := remote.Head(tag.Context().Tag(strings.Replace(d.String(), ":", "-", 1)))
		if (tagErr == nil) == referrers {
			t.Errorf("referrers API %v: referrers tag present = %v", referrers, tagErr == nil)
		}
		ms, err := verify.NewRegistry().Fetch(context.Background(), image)
		if err != nil {
			t.Fatal(err)
		}
		res := verify.Verify(d.String(), ms, []verify.Key{{Name: "notary", Cert: witness(t, ca)}})
		if !res.OK() || res.Verified[0].Format != verify.FormatNotation {
			t.Errorf("referrers API %v: %+v (%v)", referrers, res, errors.Join(res.Err()))
		}
		srv.Close()
	}
}
