package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// refusingCert is a certificate witness that refuses everything with reason.
type refusingCert struct{ reason error }

func (r refusingCert) Verify(string, CertSignature) error { return r.reason }

var errWrongSAN = errors.New(`expected SAN value "a", got "b"`)

// A refusal names why each certificate witness in force refused the
// signature, on one line, matchable with errors.Is; witnesses no longer in
// force are not named; the reasons kept are bounded.
func TestRefusalCarriesCertificateWitnessReasons(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(`{"x":1}`), nil)
	ms, err := NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	digest := img.DigestStr()
	a := Key{Name: "x509:sha256:" + strings.Repeat("a", 64), Cert: refusingCert{errWrongSAN}}
	b := Key{Name: "x509:sha256:" + strings.Repeat("b", 64), Cert: refusingCert{errors.New("another CA")}}
	pub := fpKey(t, newRSA(t, "ci"))

	res := Verify(digest, ms, []Key{pub, a, b})
	if len(res.Failures) != 1 {
		t.Fatalf("failures %+v", res.Failures)
	}
	err = res.Failures[0].Err
	msg := err.Error()
	if !errors.Is(err, ErrBadSignature) || !errors.Is(err, errWrongSAN) || strings.Contains(msg, "\n") ||
		!strings.Contains(msg, a.Name+`: expected SAN value "a", got "b"; `+b.Name+": another CA") {
		t.Fatalf("refusal %q", msg)
	}

	st := NewStore(NewDir(t.TempDir()), NewRegistry())
	defer st.Close()
	st.SetKeys([]Key{a})
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	st.SetKeys([]Key{b})
	status := st.Status(digest)
	if !strings.Contains(status, b.Name+": another CA") || strings.Contains(status, "expected SAN") {
		t.Fatalf("status %q: want only the reason of the witness in force", status)
	}
	// Many witnesses: the reasons kept stay bounded.
	var many []Key
	for i := range 3 * maxCertErrs {
		many = append(many, Key{Name: fmt.Sprintf("x509:sha256:%064d", i), Cert: refusingCert{errWrongSAN}})
	}
	st.SetKeys(many)
	if n := strings.Count(st.Status(digest), "expected SAN"); n == 0 || n > maxCertErrs {
		t.Fatalf("%d reasons in %q, want 1 to %d", n, st.Status(digest), maxCertErrs)
	}
}
