package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// refusingCert is a certificate witness that refuses every signature with
// one reason.
type refusingCert struct{ reason string }

func (r refusingCert) Verify(string, CertSignature) error { return errors.New(r.reason) }

// Why a certificate witness refused a signature (wrong identity, untrusted
// CA, expired certificate) is in the failure and in the store's status, the
// text a refusal quotes.
func TestCertificateWitnessReasonsAreReported(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	digest := img.DigestStr()
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(`{"payload":"x"}`), nil)
	ms, err := NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Name: "x509:sha256:" + digest[7:], Cert: refusingCert{"the signing certificate does not match the trusted identities"}}
	pub := fpKey(t, newRSA(t, "ci"))

	res := Verify(digest, ms, []Key{pub, key})
	if res.OK() || len(res.Failures) != 1 {
		t.Fatalf("result = %+v", res)
	}
	f := res.Failures[0]
	if !errors.Is(f.Err, ErrBadSignature) || !strings.Contains(f.Reason(), key.Name+": the signing certificate does not match") {
		t.Fatalf("failure = %v", f.Err)
	}
	if strings.Contains(f.Reason(), pub.Name+":") {
		t.Errorf("a public key's non-answer is given as a reason: %v", f.Err)
	}

	st := NewStore(NewDir(t.TempDir()), NewRegistry())
	defer st.Close()
	st.SetKeys([]Key{pub, key})
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if s := st.Status(digest); !strings.Contains(s, "does not match the trusted identities") {
		t.Fatalf("status = %q; want the witness's reason", s)
	}
}
