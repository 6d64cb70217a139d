package verify

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// expiringCert is a certificate witness that accepts every signature, each
// until one time.
type expiringCert struct{ end time.Time }

func (expiringCert) Verify(string, CertSignature) error   { return nil }
func (e expiringCert) ValidUntil(CertSignature) time.Time { return e.end }

// A verdict of a certificate witness whose signature ends with time (its
// certificate chain expires) is not kept after that time, without any new
// verification.
func TestCertificateVerdictEndsWithTheChain(t *testing.T) {
	host := testRegistry(t)
	img := pushRandom(t, host, "app")
	digest := img.DigestStr()
	attachReferrer(t, img, signature.NotationArtifactType, signature.JWSMediaType, []byte(`{"payload":"x"}`), nil)

	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(start.UnixNano())
	st := NewStore(NewDir(t.TempDir()), NewRegistry())
	defer st.Close()
	st.now = func() time.Time { return time.Unix(0, now.Load()) }

	ending := Key{Name: "x509:sha256:" + digest[7:], Cert: expiringCert{end: start.Add(time.Hour)}}
	st.SetKeys([]Key{ending})
	if err := st.Prefetch(context.Background(), digest, []string{img.Context().Name()}); err != nil {
		t.Fatal(err)
	}
	if !st.Verified(digest, ending.Name) {
		t.Fatal("not verified before the chain's end")
	}
	now.Store(start.Add(time.Hour).UnixNano())
	if st.Verified(digest, ending.Name) {
		t.Fatal("still verified at the chain's end")
	}
	if s := st.Status(digest); !strings.Contains(s, "stopped verifying at 2026-12-01T01:00:00Z (its certificate chain expired)") {
		t.Fatalf("status = %q", s)
	}
	// A witness whose signatures do not end keeps its verdict.
	forever := Key{Name: "x509:sha256:" + strings.Repeat("0", 64), Cert: expiringCert{}}
	st.SetKeys([]Key{forever})
	now.Store(start.Add(1000 * time.Hour).UnixNano())
	if !st.Verified(digest, forever.Name) {
		t.Fatal("a verdict without an end was dropped")
	}
}
