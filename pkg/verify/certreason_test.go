package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// rejectingCert is a certificate witness that refuses everything with reason.
type rejectingCert struct{ reason error }

func (r rejectingCert) Verify(string, CertSignature) error { return r.reason }

var errWrongSAN = errors.New(`expected SAN value "a", got "b"`)

// A refusal names why each certificate witness in force refused the
// signature, on one line; witnesses no longer in force are not named; the
// reasons kept are bounded.
func TestRefusalCarriesCertificateWitnessReasons(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(`{"x":1}`), nil)
	ms, err := NewRegistry().Fetch(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	digest := img.DigestStr()
	a := Key{Name: "x509:sha256:" + strings.Repeat("a", 64), Cert: rejectingCert{errWrongSAN}}
	b := Key{Name: "x509:sha256:" + strings.Repeat("b", 64), Cert: rejectingCert{errors.New("another CA")}}
	pub := fpKey(t, newRSA(t, "ci"))

	res := Verify(digest, ms, []Key{pub, a, b})
	if len(res.Failures) != 1 {
		t.Fatalf("failures %+v", res.Failures)
	}
	err = res.Failures[0].Err
	msg := err.Error()
	if !errors.Is(err, ErrBadSignature) || strings.Contains(msg, "\n") ||
		!strings.Contains(msg, a.Name+`: expected SAN value "a", got "b"`) || !strings.Contains(msg, b.Name+": another CA") {
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
	for i := range 24 {
		many = append(many, Key{Name: fmt.Sprintf("x509:sha256:%064d", i), Cert: rejectingCert{errWrongSAN}})
	}
	st.SetKeys(many)
	if n := strings.Count(st.Status(digest), "expected SAN"); n == 0 || n > 8 {
		t.Fatalf("%d reasons in %q, want 1 to 8", n, st.Status(digest))
	}
}
