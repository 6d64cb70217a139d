package witnessverify

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nri-csig/nri-csig/internal/testsigstore"
	"github.com/nri-csig/nri-csig/pkg/keyless"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

const (
	keylessSigner = "release@example.com"
	keylessIssuer = "https://accounts.example.com"
)

// keylessImage pushes a random image to a registry (with or without the
// referrers API) and returns its digest reference.
func keylessImage(t *testing.T, referrersAPI bool) name.Digest {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrersAPI)))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Host+"/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String())
}

func sigstoreKey(t *testing.T, s *testsigstore.Sigstore, id policy.SigstoreIdentity) verify.Key {
	t.Helper()
	tr, err := s.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	w, err := policy.NewSigstoreWitness("keyless", "", &policy.SigstoreTrust{TrustedRoot: string(tr), Identities: []policy.SigstoreIdentity{id}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := For(w.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if k.Cert == nil || k.Public != nil || k.Name != w.Keys[0].Fingerprint {
		t.Fatalf("verify.Key = %+v", k)
	}
	return k
}

// A keyless bundle attached as cosign v3 attaches it (referrer, or the tag
// fallback) verifies for the sigstore witness naming its signer, and for no
// other witness; a wrong SAN is refused with the reason; an attestation of
// the same signer never counts.
func TestKeylessBundleFromRegistry(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, referrersAPI := range []bool{true, false} {
		img := keylessImage(t, referrersAPI)
		digest := img.DigestStr()
		sig, err := s.Sign(keylessSigner, keylessIssuer, testsigstore.Statement(img.Context().Name(), digest, testsigstore.CosignSignPredicateType), testsigstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := testsigstore.Attach(img, sig); err != nil {
			t.Fatal(err)
		}
		ms, err := verify.NewRegistry().Fetch(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		right := sigstoreKey(t, s, policy.SigstoreIdentity{Issuer: keylessIssuer, Subject: keylessSigner})
		wrongSAN := sigstoreKey(t, s, policy.SigstoreIdentity{Issuer: keylessIssuer, Subject: "intruder@example.com"})

		res := verify.Verify(digest, ms, []verify.Key{wrongSAN, right})
		if !res.OK() || len(res.Verified) != 1 || res.Verified[0].Key != right.Name || res.Verified[0].Format != verify.FormatBundle {
			t.Fatalf("referrersAPI=%v: verified %+v failures %+v; want one bundle match by the right identity", referrersAPI, res.Verified, res.Failures)
		}
		res = verify.Verify(digest, ms, []verify.Key{wrongSAN})
		if res.OK() || len(res.Failures) != 1 {
			t.Fatalf("referrersAPI=%v: wrong SAN: %+v", referrersAPI, res)
		}
		err = res.Failures[0].Err
		if !errors.Is(err, verify.ErrBadSignature) || !strings.Contains(err.Error(), keyless.ErrIdentity.Error()) ||
			!strings.Contains(err.Error(), `expected SAN value "intruder@example.com", got "release@example.com"`) {
			t.Fatalf("referrersAPI=%v: wrong SAN refused with %v; want the SAN in the reason", referrersAPI, err)
		}

		// The store (the daemon's path) gives the same reason in Status.
		st := verify.NewStore(verify.NewDir(t.TempDir()), verify.NewRegistry())
		st.SetKeys([]verify.Key{wrongSAN})
		if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
			t.Fatal(err)
		}
		if st.Verified(digest, wrongSAN.Name) || !strings.Contains(st.Status(digest), `expected SAN value "intruder@example.com"`) {
			t.Fatalf("store status %q", st.Status(digest))
		}
		st.SetKeys([]verify.Key{right})
		if !st.Verified(digest, right.Name) {
			t.Fatalf("store: the right identity did not verify: %s", st.Status(digest))
		}
		st.Close()
	}
}

func TestKeylessAttestationNeverCounts(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	img := keylessImage(t, true)
	digest := img.DigestStr()
	att, err := s.Sign(keylessSigner, keylessIssuer, testsigstore.Statement(img.Context().Name(), digest, "https://slsa.dev/provenance/v1"), testsigstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testsigstore.Attach(img, att); err != nil {
		t.Fatal(err)
	}
	ms, err := verify.NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	res := verify.Verify(digest, ms, []verify.Key{sigstoreKey(t, s, policy.SigstoreIdentity{Issuer: keylessIssuer, Subject: keylessSigner})})
	if res.OK() || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Reason(), "is an attestation, not an image signature") {
		t.Fatalf("attestation: %+v", res)
	}
}

// A sigstore witness whose trusted root sigstore-go cannot load gets no
// verifier (All leaves it out: its signatures never count).
func TestSigstoreWitnessWithBadRootLeftOut(t *testing.T) {
	k := &policy.Key{Witness: "broken", Kind: policy.WitnessSigstore, Fingerprint: "sigstore:sha256:" + strings.Repeat("a", 64),
		Sigstore: &policy.SigstoreTrust{TrustedRoot: `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","certificateAuthorities":[{}]}`,
			Identities: []policy.SigstoreIdentity{{Issuer: keylessIssuer, Subject: keylessSigner}}}}
	var refused error
	if ks := All([]*policy.Key{k}, func(_ *policy.Key, err error) { refused = err }); len(ks) != 0 || refused == nil {
		t.Fatalf("keys %+v, error %v; want the witness left out with an error", ks, refused)
	}
}

// A keyless cosign v2 signature (the sha256-<hex>.sig tag, certificate and
// Rekor entry in the layer's annotations) verifies for the sigstore witness
// naming its signer; a public key never verifies it; a wrong SAN is refused
// with the reason.
func TestLegacyKeylessFromRegistry(t *testing.T) {
	s, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	img := keylessImage(t, false)
	digest := img.DigestStr()
	l, err := s.SignLegacy(keylessSigner, keylessIssuer, img.Context().Name(), digest, testsigstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testsigstore.AttachLegacy(img, []*testsigstore.Legacy{l}); err != nil {
		t.Fatal(err)
	}
	ms, err := verify.NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	right := sigstoreKey(t, s, policy.SigstoreIdentity{Issuer: keylessIssuer, Subject: keylessSigner})
	res := verify.Verify(digest, ms, []verify.Key{right})
	if !res.OK() || res.Verified[0].Format != verify.FormatLegacy || res.Verified[0].Identity != img.Context().Name() {
		t.Fatalf("verified %+v failures %+v", res.Verified, res.Failures)
	}
	wrong := sigstoreKey(t, s, policy.SigstoreIdentity{Issuer: keylessIssuer, SubjectRegExp: `^ci@example\.com$`})
	res = verify.Verify(digest, ms, []verify.Key{wrong})
	if res.OK() || !strings.Contains(res.Err().Error(), `expected SAN value to match regex "^ci@example\.com$", got "release@example.com"`) {
		t.Fatalf("wrong SAN: %v", res.Err())
	}
}
