package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/bundletest"
)

var day0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func datedBundle(t testing.TB, serial string, notBefore, expires time.Time) []byte {
	return bundletest.Dated(t, serial, notBefore, expires)
}

func TestBundleValidityHeader(t *testing.T) {
	nb, ex := day0, day0.Add(30*24*time.Hour)
	b, err := ParseBundle("dated.yaml", datedBundle(t, "7", nb, ex))
	if err != nil {
		t.Fatal(err)
	}
	if !b.NotBefore.Equal(nb) || !b.Expires.Equal(ex) {
		t.Fatalf("parsed notBefore %v expires %v; want %v %v", b.NotBefore, b.Expires, nb, ex)
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle("marshaled.yaml", out)
	if err != nil || !b2.Expires.Equal(ex) || !b2.NotBefore.Equal(nb) {
		t.Fatalf("round trip: %v, %v %v", err, b2.NotBefore, b2.Expires)
	}
	if _, err := ParseBundle("inverted.yaml", datedBundle(t, "7", ex, nb)); err == nil || !strings.Contains(err.Error(), "is not after notBefore") {
		t.Errorf("notBefore after expires: %v; want a refusal", err)
	}
	bad := strings.Replace(string(datedBundle(t, "7", time.Time{}, ex)), ex.Format(time.RFC3339), "next month", 1)
	if _, err := ParseBundle("bad.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "spec.expires") {
		t.Errorf("malformed expires: %v; want an error naming spec.expires", err)
	}
}

func TestFreshnessAt(t *testing.T) {
	for name, tc := range map[string]struct {
		notBefore, expires, now time.Time
		want                    Freshness
		margin                  time.Duration
	}{
		"no expiry":                     {now: day0, want: Fresh},
		"30 days, no notBefore, 2 left": {expires: day0.Add(48 * time.Hour), now: day0, want: Fresh, margin: 24 * time.Hour},
		"30 days, no notBefore, 1 left": {expires: day0.Add(24 * time.Hour), now: day0, want: Stale, margin: 24 * time.Hour},
		"10h lifetime, 3h left":         {notBefore: day0, expires: day0.Add(10 * time.Hour), now: day0.Add(7 * time.Hour), want: Fresh, margin: 2 * time.Hour},
		"10h lifetime, 2h left":         {notBefore: day0, expires: day0.Add(10 * time.Hour), now: day0.Add(8 * time.Hour), want: Stale, margin: 2 * time.Hour},
		"at expiry":                     {expires: day0, now: day0, want: Expired, margin: 24 * time.Hour},
		"past expiry":                   {expires: day0, now: day0.Add(time.Second), want: Expired, margin: 24 * time.Hour},
	} {
		b := &Bundle{Serial: 1, NotBefore: tc.notBefore, Expires: tc.expires}
		if got := b.FreshnessAt(tc.now); got != tc.want {
			t.Errorf("%s: FreshnessAt = %s; want %s", name, got, tc.want)
		}
		if got := b.StaleMargin(); got != tc.margin {
			t.Errorf("%s: StaleMargin = %v; want %v", name, got, tc.margin)
		}
	}
}
