package verify

import (
	"encoding/binary"
	"iter"
)

// sigList is a check's signatures (nearly always one) in one string, each
// a uvarint length and its bytes: a string header and one allocation per
// check, where a [][]byte took a slice header, a backing array and a slice
// per signature. The encoding is one-to-one, so two lists are equal exactly
// when their signatures are.
type sigList string

func sigsOf(sigs ...[]byte) sigList {
	n := 0
	for _, s := range sigs {
		n += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range sigs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return sigList(b)
}

// all yields the signatures in order.
func (l sigList) all() iter.Seq[string] {
	return func(yield func(string) bool) {
		for s := string(l); s != ""; {
			n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
			if k <= 0 || uint64(len(s)-k) < n {
				return // not written by sigsOf
			}
			if !yield(s[k : k+int(n)]) {
				return
			}
			s = s[k+int(n):]
		}
	}
}
