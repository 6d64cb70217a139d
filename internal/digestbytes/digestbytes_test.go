package digestbytes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// SHA256 agrees with hex.DecodeString on lower-case sha256 digests and
// refuses everything else: upper case, other lengths, other algorithms, and
// random single-byte corruptions.
func TestSHA256AgreesWithHexDecode(t *testing.T) {
	const digits = "0123456789abcdef"
	valid := "sha256:" + strings.Repeat(digits, 4)
	texts := []string{valid, "sha256:" + strings.Repeat("f", 64), "sha256:" + strings.Repeat("0", 64),
		strings.ToUpper(valid), "sha256:" + strings.Repeat("A", 64), valid[:len(valid)-1], valid + "0",
		"sha512:" + strings.Repeat("ab", 64), "sha256-" + valid[7:], "", "sha256:"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := []byte(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte{byte(i), byte(i >> 8)})))
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
		sum, ok := SHA256(d)
		if ok != want || (want && string(sum[:]) != string(raw)) {
			t.Fatalf("SHA256(%q) = %x, %v; want %x, %v", d, sum, ok, raw, want)
		}
	}
}

func BenchmarkSHA256(b *testing.B) {
	d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("x")))
	for b.Loop() {
		if _, ok := SHA256(d); !ok {
			b.Fatal("not a digest")
		}
	}
}
