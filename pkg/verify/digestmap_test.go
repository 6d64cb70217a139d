package verify

import (
	"context"

	"encoding/hex"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"math/rand/v2"
	"strings"
	"testing"
)

// idOf keeps as bytes exactly the "sha256:<64 lower-case hex>" texts, and
// every digest prints back as it was given.
func TestDigestIDExact(t *testing.T) {
	const digits = "0123456789abcdef"
	valid := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	texts := []string{valid, testDigest(1), "sha256:" + strings.Repeat("f", 64), "sha256:" + strings.Repeat("0", 64),
		strings.ToUpper(valid), "sha256:" + strings.Repeat("A", 64), valid[:len(valid)-1], valid + "0",
		"sha512:" + strings.Repeat("ab", 64), "sha256-" + valid[7:], "", "sha256:"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := []byte(testDigest(r.IntN(1000)))
		switch r.IntN(3) {
		case 0: // one byte anything
			b[7+r.IntN(64)] = byte(r.IntN(256))
		case 1: // one digit another digit
			b[7+r.IntN(64)] = digits[r.IntN(16)]
		}
		texts = append(texts, string(b))
	}
	for _, d := range texts {
		h, _ := strings.CutPrefix(d, "sha256:")
		raw, err := hex.DecodeString(h)
		want := strings.HasPrefix(d, "sha256:") && err == nil && len(raw) == 32 && h == strings.ToLower(h)
		id := idOf(d)
		if id.isSHA != want || id.String() != d || (want && string(id.sha[:]) != string(raw)) {
			t.Fatalf("idOf(%q) = %+v (%q); want bytes %v", d, id, id.String(), want)
		}
	}
	m := newDigestMap[int](0)
	for i, d := range texts[:12] {
		m.set(d, i)
	}
	for i, d := range texts[:12] {
		if v, ok := m.get(d); !ok || v != i {
			t.Errorf("get(%q) = %d, %v; want %d", d, v, ok, i)
		}
	}
	if m.len() != 12 {
		t.Errorf("len = %d; want 12 (upper- and lower-case digests are two)", m.len())
	}
}

// A digest that is not a sha256 one the store keeps as text: it is known,
// forgotten and logged as any other, apart from its sha256 look-alikes.
func TestStoreOtherDigests(t *testing.T) {
	ss, ks := ecdsaKeys(t, 1)
	d := testDigest(1)
	upper := "sha256:" + strings.ToUpper(strings.TrimPrefix(d, "sha256:"))
	other := "sha512:" + strings.Repeat("ab", 64)
	f := &mapFetcher{ms: map[string][]signature.Manifest{d: {legacyManifest(t, ss[0], d)}, other: {legacyManifest(t, ss[0], d)}}}
	dir := t.TempDir()
	st := NewStore(NewDir(dir), f)
	st.SetKeys(ks)
	for _, x := range []string{other, upper, d} {
		if err := st.Prefetch(context.Background(), x, []string{"reg.example/app"}); err != nil {
			t.Logf("Prefetch(%s): %v", x, err)
		}
	}
	want := map[string]string{}
	for _, x := range []string{other, upper, d} {
		want[x] = st.Status(x)
	}
	if !st.Verified(d, ks[0].Name) || st.Verified(upper, ks[0].Name) || !st.Known(other) || len(st.entries.other) != 1 {
		t.Fatalf("Verified: %s; %s", st.Status(d), st.Status(upper))
	}
	st.Compact(nil)
	st.Close()
	st = NewStore(NewDir(dir))
	st.SetKeys(ks)
	for x, w := range want {
		if got := st.Status(x); got != w {
			t.Errorf("after Compact and a restart, Status(%s) = %q; want %q", x, got, w)
		}
	}
	st.Forget(upper, other)
	if st.Known(upper) || st.Known(other) || !st.Known(d) {
		t.Errorf("after Forget: known %v %v %v", st.Known(upper), st.Known(other), st.Known(d))
	}
}
